import { estimatePromptTokens, groundedPrompt, type Source } from './grounded-prompt';
import { countTokens } from '../../lib/token-counter';

const sources: Source[] = [
  { title: 'Install guide', heading: 'Setup > Install', text: 'Setup > Install\n\nRun npm install, then npm start. The gateway listens on port 4000.' },
  { title: 'Operations', heading: null, text: "Redis keeps every service's state under its own key prefix." },
  { title: 'Billing', heading: 'Prices', text: 'Prices are per million tokens, in integer micro-units.' },
  { title: 'FAQ', heading: 'Limits', text: 'Documents may be up to 512 KB. Each is split into chunks of at most 160 tokens.' },
];
const question = 'Which port does the gateway listen on?';
const roomy = { promptTokens: 10_000 };

/** The prompt's size with no source: the instructions and the question. */
function bareTokens(): number {
  const system = groundedPrompt(question, sources, roomy).messages[0].content;
  return estimatePromptTokens([
    { role: 'system', content: system },
    { role: 'user', content: `Sources:\n\n(none)\n\nQuestion: ${question}` },
  ]);
}

function userMessage(prompt: ReturnType<typeof groundedPrompt>): string {
  const user = prompt.messages.find((message) => message.role === 'user');
  if (!user) throw new Error('no user message');
  return user.content;
}

describe('groundedPrompt', () => {
  it('instructs the model to answer only from the numbered sources, cite them and say when they lack the answer', () => {
    const prompt = groundedPrompt(question, sources, roomy);
    expect(prompt.messages.map((message) => message.role)).toEqual(['system', 'user']);
    const system = prompt.messages[0].content;
    expect(system).toMatch(/only the numbered sources/);
    expect(system).toMatch(/\[1\]/);
    expect(system).toMatch(/do not contain the answer, say plainly/);
  });

  it('numbers the sources in the given order as "[n] Title — Heading", then the question', () => {
    const prompt = groundedPrompt(question, sources, roomy);
    expect(prompt.sources).toBe(4);
    expect(userMessage(prompt)).toBe(
      [
        'Sources:',
        '',
        '[1] Install guide — Setup > Install\nRun npm install, then npm start. The gateway listens on port 4000.',
        '',
        "[2] Operations\nRedis keeps every service's state under its own key prefix.",
        '',
        '[3] Billing — Prices\nPrices are per million tokens, in integer micro-units.',
        '',
        '[4] FAQ — Limits\nDocuments may be up to 512 KB. Each is split into chunks of at most 160 tokens.',
        '',
        'Question: Which port does the gateway listen on?',
      ].join('\n'),
    );
  });

  it("does not repeat the heading trail a chunk's text starts with, whole or shortened", () => {
    const shortened: Source = { title: 'Guide', heading: 'A very long outer heading > Inner', text: '…outer heading > Inner\n\nThe body.' };
    const unrelated: Source = { title: 'Notes', heading: 'Inner', text: 'First paragraph.\n\nSecond paragraph.' };
    const content = userMessage(groundedPrompt(question, [shortened, unrelated], roomy));
    expect(content).toContain('[1] Guide — A very long outer heading > Inner\nThe body.');
    expect(content).toContain('[2] Notes — Inner\nFirst paragraph.\n\nSecond paragraph.');
  });

  it('keeps the estimated prompt within every budget, with as many sources, in order, as fit', () => {
    const all = estimatePromptTokens(groundedPrompt(question, sources, roomy).messages);
    const seen = new Set<number>();
    for (let budget = all + 5; budget >= bareTokens(); budget--) {
      const prompt = groundedPrompt(question, sources, { promptTokens: budget });
      seen.add(prompt.sources);
      expect(estimatePromptTokens(prompt.messages)).toBeLessThanOrEqual(budget);
      // The same prompt with one more source would not have fitted.
      if (prompt.sources < sources.length) {
        const more = groundedPrompt(question, sources.slice(0, prompt.sources + 1), roomy);
        expect(estimatePromptTokens(more.messages)).toBeGreaterThan(budget);
      }
      const content = userMessage(prompt);
      sources.forEach((source, i) => expect(content.includes(source.title)).toBe(i < prompt.sources));
      for (let n = 1; n <= prompt.sources; n++) expect(content).toContain(`[${n}] ${sources[n - 1].title}`);
      expect(content.endsWith(`Question: ${question}`)).toBe(true);
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4]);
  });

  it('leaves out a source that does not fit whole, and every one after it, rather than cutting it', () => {
    const long: Source = { title: 'Long', heading: null, text: 'word '.repeat(400).trim() };
    const prompt = groundedPrompt(question, [sources[0], long, sources[1]], { promptTokens: 300 });
    expect(prompt.sources).toBe(1);
    expect(userMessage(prompt)).not.toContain('word word');
    expect(userMessage(prompt)).not.toContain(sources[1].title);
  });

  it('keeps the question with no sources when not even the first fits', () => {
    const long: Source = { title: 'Long', heading: null, text: 'word '.repeat(400).trim() };
    const prompt = groundedPrompt(question, [long], { promptTokens: 200 });
    expect(prompt.sources).toBe(0);
    expect(userMessage(prompt)).toBe(`Sources:\n\n(none)\n\nQuestion: ${question}`);
  });

  it('throws a RangeError saying by how much the question and instructions alone exceed the budget', () => {
    const bare = bareTokens();
    const call = () => groundedPrompt(question, sources, { promptTokens: bare - 3 });
    expect(call).toThrow(RangeError);
    expect(call).toThrow(`the question and the instructions alone take ${bare} tokens, 3 more than the prompt budget of ${bare - 3}`);
    expect(groundedPrompt(question, sources, { promptTokens: bare }).sources).toBe(0);
  });

  it('refuses an empty question, no sources or a budget that is not a positive integer with a TypeError', () => {
    expect(() => groundedPrompt('  ', sources, roomy)).toThrow(TypeError);
    expect(() => groundedPrompt(question, [], roomy)).toThrow(/at least one source .*got 0/);
    expect(() => groundedPrompt(question, [], roomy)).toThrow(TypeError);
    expect(() => groundedPrompt(question, sources, { promptTokens: 0 })).toThrow(/positive integer, but got 0/);
    expect(() => groundedPrompt(question, sources, { promptTokens: 1.5 })).toThrow(TypeError);
  });
});

describe('estimatePromptTokens', () => {
  it('counts r50k_base tokens of the messages as the default chat template frames them', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    expect(estimatePromptTokens(messages)).toBe(countTokens('<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n'));
  });
});
