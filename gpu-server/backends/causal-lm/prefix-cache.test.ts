/**
 * The prefix cache on the built sluice-chat model, run as the server runs
 * it (a model-instance worker; ONNX Runtime cannot run in jest's realm): two
 * instances, one with the cache and one without, must generate the same
 * greedy text for many prompts that share prefixes of many lengths — the
 * cached K/V, their placement, the masks and the positions are then right
 * up to float rounding. The engine's handling of mixed cached lengths is
 * tested token by token on a fake model in engine.test.ts.
 */
import { PrefixCacheCounter } from '../../core/prefix-cache-counters';
import { isStreamingRunner, type StreamingRunner } from '../../core/runner';
import { inWorker } from '../worker-host';
import { chatContext, chatInputs, collectingSink, withPrefixCache } from './chat-requests';
import { CAUSAL_LM_RUNNER } from './runner';

/** Our model's K/V per 16-token block: 2 (key, value) × 2 layers × 4 heads × 16 tokens × 32 dims × 4 bytes. */
const BLOCK_BYTES = 2 * 2 * 4 * 16 * 32 * 4;

const runners: StreamingRunner[] = [];

async function instance(cacheBytes: number): Promise<{ runner: StreamingRunner; counters: Float64Array }> {
  const context = withPrefixCache(chatContext('sluice-chat'), cacheBytes);
  const runner = await inWorker(CAUSAL_LM_RUNNER)(context);
  if (!isStreamingRunner(runner)) throw new Error('the causal-lm worker runner does not stream');
  runners.push(runner);
  return { runner, counters: context.prefixCacheCounters };
}

async function greedy(runner: StreamingRunner, prompt: string) {
  const sink = collectingSink();
  await runner.stream(chatInputs({ prompt, sampling: { max_tokens: 12, temperature: 0, ignore_eos: true }, stream: false, exclude: true, returnCounts: true }), sink, new AbortController().signal);
  const final = sink.responses[0];
  return { text: final.text, prompt: final.numInputTokens!, cached: final.cachedPromptTokens! };
}

afterAll(async () => {
  await Promise.all(runners.map((r) => r.close()));
});

const system = '<|system|>\nYou are a careful assistant for the Sluice platform. Answer briefly, cite the documents you use, and say when you do not know.\n'.repeat(3);
const questions = ['What is a GPU?', 'How do I top up my balance?', 'Why is the sky blue?', 'Summarise the last invoice.', 'Name three rivers.', 'What is prefix caching?'].map(
  (q) => `<|user|>\n${q}\n`,
);
const prompts = [
  ...questions.map((q) => `${system}${q}<|assistant|>\n`),
  // Cuts of the system prompt at many lengths, so cached runs of 0 to several blocks meet.
  ...[7, 40, 75, 110, 160, 230].map((n) => `${system.slice(0, n)}${questions[0]}`),
  // A conversation growing turn by turn.
  ...questions.slice(1).map((_, i) => `${system}${questions.slice(0, i + 2).join('<|assistant|>\nNoted.\n')}<|assistant|>\n`),
];

describe('prefix cache on the real model', () => {
  it('gives the same greedy text with the cache on and off, for prompts sharing prefixes, one by one and all at once', async () => {
    const [{ runner: cached, counters }, { runner: uncached }] = await Promise.all([instance(64 << 20), instance(0)]);
    const expected = [];
    for (const p of prompts) expected.push(await greedy(uncached, p));
    expect(expected.every((e) => e.cached === 0)).toBe(true);
    // One by one: each prompt may reuse what the earlier ones left.
    const alone = [];
    for (const p of prompts) alone.push(await greedy(cached, p));
    expect(alone.map((a) => a.text)).toEqual(expected.map((e) => e.text));
    expect(alone.filter((a) => a.cached > 0).length).toBeGreaterThan(prompts.length / 2);
    // All at once, every prompt cached by now: one prefill pass with different cached lengths, then shared decode steps.
    const together = await Promise.all(prompts.map((p) => greedy(cached, p)));
    expect(together.map((a) => a.text)).toEqual(expected.map((e) => e.text));
    expect(together.map((a) => a.cached)).toEqual(together.map((a) => Math.floor((a.prompt - 1) / 16) * 16));
    const all = [...alone, ...together];
    expect(counters[PrefixCacheCounter.HitTokens]).toBe(all.reduce((n, a) => n + a.cached, 0));
    expect(counters[PrefixCacheCounter.MissTokens]).toBe(all.reduce((n, a) => n + a.prompt - a.cached, 0));
    expect(counters[PrefixCacheCounter.Bytes]).toBeGreaterThan(0);
    expect(counters[PrefixCacheCounter.EvictedBlocks]).toBe(0);
  });

  it('stays within a small budget by evicting, and still generates the same text', async () => {
    const [{ runner: cached, counters }, { runner: uncached }] = await Promise.all([instance(4 * BLOCK_BYTES), instance(0)]);
    for (const p of [prompts[0], prompts[13], prompts[0], prompts[8], prompts[13], prompts[0]]) {
      expect((await greedy(cached, p)).text).toBe((await greedy(uncached, p)).text);
      expect(counters[PrefixCacheCounter.Bytes]).toBe(4 * BLOCK_BYTES);
    }
    expect(counters[PrefixCacheCounter.EvictedBlocks]).toBeGreaterThan(0);
  });
});
