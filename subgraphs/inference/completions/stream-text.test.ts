/**
 * The bookkeeping of what a stream's client has, across runs of its
 * generation: nothing sent twice or skipped, offsets where the client's text
 * stands, the resumed part counted as delivered once, and a restarted run
 * that makes other text caught before it is spliced on.
 */
import { StreamText } from './stream-text';

/** A StreamText and the text it counted as delivered without sending. */
function setUp(resumeAt = 0) {
  const had: string[] = [];
  return { had, text: new StreamText(resumeAt, (piece) => had.push(piece)) };
}

test('a first run sends every piece, each at the offset where the text before it ends', () => {
  const { text, had } = setUp();
  expect(text.take('The ')).toBe('The ');
  expect(text.offsetOf('The ')).toBe(0);
  expect(text.take('river')).toBe('river');
  expect(text.offsetOf('river')).toBe(4);
  expect(text.problem(true)).toBeUndefined();
  expect(had).toEqual([]);
});

test('a resumed run sends only what lies past resumeAt, counting the rest as delivered once, whatever the pieces', () => {
  const { text, had } = setUp(6);
  expect(text.take('The')).toBe('');
  expect(text.take(' river')).toBe('ver');
  expect(text.offsetOf('ver')).toBe(6);
  expect(text.take(' flows')).toBe(' flows');
  expect(had.join('')).toBe('The ri');
});

test('before the client’s point is reached, an (empty) last chunk is placed at that point', () => {
  const { text } = setUp(10);
  text.take('The');
  expect(text.offsetOf('')).toBe(10);
});

test('a resumeAt past the end of the text is BAD_USER_INPUT, saying how long the text is', () => {
  const { text } = setUp(50);
  text.take('Short text.');
  expect(text.problem(false)).toBeUndefined();
  expect(text.problem(true)).toEqual({ code: 'BAD_USER_INPUT', message: "resumeAt expects at most 11 (the characters of this stream's text), but got 50" });
});

test('a run started again after a loss sends nothing twice and counts nothing twice, however its pieces fall', () => {
  const { text, had } = setUp();
  text.take('The ri');
  text.take('ver');
  text.restart();
  expect(text.take('The river')).toBe('');
  expect(text.offsetOf('')).toBe(9);
  expect(text.take(' flows.')).toBe(' flows.');
  expect(text.offsetOf(' flows.')).toBe(9);
  expect(text.diverged).toBe(false);
  expect(text.problem(true)).toBeUndefined();
  expect(had).toEqual([]);
});

test('a restart while a resumed run was still making the client’s text again skips all of it, and credits it once', () => {
  const { text, had } = setUp(8);
  text.take('The ');
  text.restart();
  expect(text.take('The river ')).toBe('r ');
  expect(had.join('')).toBe('The rive');
});

test('a restarted run that makes other text has diverged, from the first character that differs; one that ends short is GPU_UNAVAILABLE', () => {
  const split = setUp();
  split.text.take('The river');
  split.text.restart();
  split.text.take('The ro');
  expect(split.text.diverged).toBe(true);
  expect(split.text.problem(false)).toEqual({ code: 'GPU_UNAVAILABLE', message: expect.stringContaining('made other text from character 5 of the 9 already sent') });

  const short = setUp();
  short.text.take('The river');
  short.text.restart();
  short.text.take('The');
  expect(short.text.problem(true)).toEqual({ code: 'GPU_UNAVAILABLE', message: expect.stringContaining('ended after 3 characters, where 9 had been sent') });
});
