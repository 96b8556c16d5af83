import { describe, expect, it } from 'vitest';
import { addChunk, emptyStream, isFinished, resumable, type StreamChunk } from './stream';

const usage = { promptTokens: 5, completionTokens: 3, totalTokens: 8, promptCacheHitTokens: 0, promptCacheMissTokens: 5 };
const assemble = (chunks: StreamChunk[]) => chunks.reduce(addChunk, emptyStream);

describe('stream assembly', () => {
  it('appends deltas in order and takes the finish reason and usage from the last chunk', () => {
    const stream = assemble([
      { index: 0, delta: 'Hel' },
      { index: 1, delta: 'lo' },
      { index: 2, delta: '!', finishReason: 'STOP', usage },
    ]);
    expect(stream.text).toBe('Hello!');
    expect(stream.usage).toEqual(usage);
    expect(isFinished(stream)).toBe(true);
  });

  it('holds a chunk that arrives early until the gap before it is filled', () => {
    const gap = assemble([
      { index: 0, delta: 'a' },
      { index: 2, delta: 'c' },
    ]);
    expect(gap.text).toBe('a');
    expect(
      assemble([
        { index: 0, delta: 'a' },
        { index: 2, delta: 'c' },
        { index: 1, delta: 'b' },
      ]).text,
    ).toBe('abc');
  });

  it('ignores a chunk it has already taken in', () => {
    const stream = assemble([
      { index: 0, delta: 'a' },
      { index: 0, delta: 'a' },
      { index: 1, delta: 'b' },
      { index: 1, delta: 'b' },
    ]);
    expect(stream.text).toBe('ab');
  });

  it('keeps the error of a stream that ends with ERROR', () => {
    const stream = assemble([
      { index: 0, delta: 'par' },
      { index: 1, delta: '', finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE', message: 'the GPU went away' } },
    ]);
    expect(stream).toMatchObject({ text: 'par', finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE' } });
  });

  it('places chunks that carry an offset by it: a run that starts again, split otherwise, adds only the text past what is shown', () => {
    const cut = assemble([
      { index: 0, offset: 0, delta: 'The ri' },
      { index: 1, offset: 6, delta: 'ver ' },
    ]);
    // graphql-ws subscribed again from the start: the same text, in other chunks, with the index counted from 0.
    const again = [
      { index: 0, offset: 0, delta: 'The' },
      { index: 1, offset: 3, delta: ' river fl' },
      { index: 2, offset: 12, delta: 'ows.', finishReason: 'STOP' as const, usage },
    ].reduce(addChunk, cut);
    expect(again).toMatchObject({ text: 'The river flows.', finishReason: 'STOP', usage });
  });

  it('holds a chunk whose offset is past the text until the text reaches it', () => {
    const held = assemble([
      { index: 0, offset: 0, delta: 'ab' },
      { index: 2, offset: 4, delta: 'ef' },
    ]);
    expect(held.text).toBe('ab');
    expect(addChunk(held, { index: 1, offset: 2, delta: 'cd' }).text).toBe('abcdef');
  });

  it('a stream resumed after a GPU_UNAVAILABLE end keeps its text and is no longer finished; the resumed run goes on from the offset asked', () => {
    const cut = assemble([
      { index: 0, offset: 0, delta: 'par' },
      { index: 1, offset: 3, delta: 't', finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE', message: 'the GPU went away' } },
    ]);
    const resumed = resumable(cut);
    expect(resumed).toMatchObject({ text: 'part', finishReason: null, error: null });
    expect(addChunk(resumed, { index: 0, offset: 4, delta: 'ly', finishReason: 'STOP', usage })).toMatchObject({ text: 'partly', finishReason: 'STOP', error: null });
  });

  it('is not finished before its last chunk, and leaves the stream it was given unchanged', () => {
    const first = addChunk(emptyStream, { index: 0, delta: 'x' });
    expect(isFinished(first)).toBe(false);
    expect(emptyStream.text).toBe('');
  });
});
