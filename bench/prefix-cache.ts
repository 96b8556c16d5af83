/**
 * Issue 20, item 5 (first part): what the causal-lm prefix KV cache buys, on
 * sluice-chat instances in their worker threads as the gpu-server runs them
 * (worker-host; no transport in front, so the figures are the engine's).
 *
 * 1. Time to first token of a ~900-token shared system prompt plus a short
 *    question, on one instance with the cache on: "cold" prompts start with
 *    a unique line (so not one block is cached), "warm" ones are the shared
 *    system prompt already cached by an earlier request. At 1 stream (one
 *    request at a time) and at 16 concurrent streams (16 requests started
 *    together: one prefill pass for all, then shared decode steps). Target:
 *    warm ≥ 5× faster.
 * 2. Generation tokens/s of unshared prompts (no prefix in common) with the
 *    cache on vs off, 16 concurrent streams: the cache's bookkeeping (block
 *    hashes, copies into the cache, eviction) must cost nothing visible.
 * Variants alternate for several rounds; figures are medians.
 *
 *   npx tsx bench/prefix-cache.ts [rounds, default 3]
 */
import * as os from 'node:os';
import { CAUSAL_LM_RUNNER } from '../gpu-server/backends/causal-lm/runner';
import { chatContext, chatInputs, collectingSink, MODEL_REPOSITORY, withPrefixCache } from '../gpu-server/backends/causal-lm/chat-requests';
import { inWorker } from '../gpu-server/backends/worker-host';
import { isStreamingRunner, type StreamingRunner } from '../gpu-server/core/runner';
import { alternate, median, sampleTexts } from '../gpu-server/testing/load-generator';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { loadNote, percentile, recordResult } from './results';

const ROUNDS = Number(process.argv[2] ?? 3);
const CONCURRENCY = 16;
/** Requests per round for TTFT at 1 stream. */
const SERIAL_REQUESTS = 8;
const TARGET = 5;
const CACHE_BYTES = 64 << 20;
const QUESTIONS = [
  'What is a GPU?',
  'How do I top up my balance?',
  'Why is the sky blue?',
  'Summarise my last invoice.',
  'Name three rivers.',
  'What is prefix caching?',
  'Who wrote this?',
  'When does it close?',
];
/** About 900 tokens of the chat model's tokenizer (checked against num_input_tokens at start). */
const SYSTEM = `<|system|>\n${sampleTexts(21, 16).join('. ')}\n`;

interface Ttft {
  ms: number;
  promptTokens: number;
  cachedTokens: number;
}

async function startInstance(cacheBytes: number): Promise<StreamingRunner> {
  const runner = await inWorker(CAUSAL_LM_RUNNER)(withPrefixCache(chatContext('sluice-chat'), cacheBytes));
  if (!isStreamingRunner(runner)) throw new Error('the causal-lm runner does not stream');
  return runner;
}

/** Streams `prompt`; resolves with the time to its first response and its prompt counts once it has ended. */
async function timeToFirstToken(runner: StreamingRunner, prompt: string, maxTokens = 4): Promise<Ttft> {
  const t0 = process.hrtime.bigint();
  let first: number | undefined;
  const sink = collectingSink(() => (first ??= Number(process.hrtime.bigint() - t0) / 1e6));
  await runner.stream(chatInputs({ prompt, sampling: { max_tokens: maxTokens, temperature: 0, ignore_eos: true }, stream: true, returnCounts: true }), sink, new AbortController().signal);
  const final = sink.responses[sink.responses.length - 1];
  return { ms: first!, promptTokens: final.numInputTokens!, cachedTokens: final.cachedPromptTokens! };
}

let unique = 0;
const question = (i: number) => `<|user|>\n${QUESTIONS[i % QUESTIONS.length]}\n<|assistant|>\n`;
/** Starts with a line no other prompt has, so no block of it is cached. */
const coldPrompt = (i: number) => `<|system|>\nsession ${++unique} ${Date.now()}\n${SYSTEM.slice('<|system|>\n'.length)}${question(i)}`;
const warmPrompt = (i: number) => `${SYSTEM}${question(i)}`;

/** `requests` requests, `concurrency` started together at a time. */
async function ttftRun(runner: StreamingRunner, prompt: (i: number) => string, concurrency: number, requests: number): Promise<Ttft[]> {
  const results: Ttft[] = [];
  for (let i = 0; i < requests; i += concurrency) {
    results.push(...(await Promise.all(Array.from({ length: concurrency }, (_, j) => timeToFirstToken(runner, prompt(i + j))))));
  }
  return results;
}

/** The next prompt of the unshared list no run has used (no prompt is sent twice, so none can be cached). */
let nextUnshared = 0;

/** Tokens/s of CONCURRENCY closed-loop streams of unshared prompts, `total` tokens; and the share of prompt tokens reused (0 when nothing is shared). */
async function throughput(runner: StreamingRunner, prompts: string[], total: number, maxTokens: number): Promise<{ perSecond: number; reused: number }> {
  let started = 0;
  const first = nextUnshared;
  nextUnshared += Math.ceil(total / maxTokens) + CONCURRENCY;
  let tokens = 0;
  let promptTokens = 0;
  let cachedTokens = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started * maxTokens < total) {
        const sink = collectingSink();
        await runner.stream(
          chatInputs({ prompt: prompts[(first + started++) % prompts.length], sampling: { max_tokens: maxTokens, temperature: 0, ignore_eos: true }, stream: true, returnCounts: true }),
          sink,
          new AbortController().signal,
        );
        tokens += sink.responses.reduce((n, r) => n + (r.numOutputTokens ?? 0), 0);
        const final = sink.responses[sink.responses.length - 1];
        promptTokens += final.numInputTokens!;
        cachedTokens += final.cachedPromptTokens!;
      }
    }),
  );
  return { perSecond: tokens / (Number(process.hrtime.bigint() - t0) / 1e9), reused: cachedTokens / promptTokens };
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  await buildModels(MODEL_REPOSITORY);
  const [cached, uncached] = await Promise.all([startInstance(CACHE_BYTES), startInstance(0)]);
  try {
    // Warm-up (session, JIT) and the shared system prompt into the cache.
    const probe = await timeToFirstToken(cached, warmPrompt(0));
    await ttftRun(cached, coldPrompt, CONCURRENCY, CONCURRENCY);
    await ttftRun(uncached, coldPrompt, CONCURRENCY, CONCURRENCY);

    const ttftRows: string[] = [];
    const summary: string[] = [];
    for (const [concurrency, requests] of [
      [1, SERIAL_REQUESTS],
      [CONCURRENCY, CONCURRENCY],
    ]) {
      const [cold, warm] = await alternate(ROUNDS, [() => ttftRun(cached, coldPrompt, concurrency, requests), () => ttftRun(cached, warmPrompt, concurrency, requests)]);
      const ratios = cold.map((c, r) => median(c.map((t) => t.ms)) / median(warm[r].map((t) => t.ms)));
      const all = (runs: Ttft[][]) => runs.flat();
      const ms = (runs: Ttft[][]) => all(runs).map((t) => t.ms);
      const reused = all(warm).reduce((n, t) => n + t.cachedTokens, 0) / all(warm).reduce((n, t) => n + t.promptTokens, 0);
      const ratio = median(ratios);
      ttftRows.push(
        `| ${concurrency} | ${median(ms(cold)).toFixed(1)} (p90 ${percentile(ms(cold), 90).toFixed(1)}) | ${median(ms(warm)).toFixed(1)} (p90 ${percentile(ms(warm), 90).toFixed(1)}) | ${(reused * 100).toFixed(1)}% | **${ratio.toFixed(2)}×** | ${ratios.map((r) => r.toFixed(2)).join(', ')} |`,
      );
      summary.push(`${concurrency} stream${concurrency > 1 ? 's' : ''}: ${ratio.toFixed(2)}× (${ratio >= TARGET ? 'met' : 'not met'})`);
    }

    const unshared = sampleTexts(4096, 60).map((t, i) => `<|user|>\n${i} ${t}\n<|assistant|>\n`);
    const tokens = 2048;
    const [on, off] = await alternate(ROUNDS, [() => throughput(cached, unshared, tokens, 32), () => throughput(uncached, unshared, tokens, 32)]);
    const change = median(on.map((o, r) => o.perSecond / off[r].perSecond));
    const perSecond = (runs: Array<{ perSecond: number }>) => `${median(runs.map((x) => x.perSecond)).toFixed(0)} tokens/s (${runs.map((x) => x.perSecond.toFixed(0)).join(', ')})`;

    const body = [
      `sluice-chat (the generated 2-layer, 128-wide decoder; ONNX Runtime on CPU, 1 intra-op thread) in its worker thread, as the gpu-server runs an instance, no transport; prefix cache ${CACHE_BYTES >> 20} MiB in 16-token blocks; ${ROUNDS} alternating rounds (\`npx tsx bench/prefix-cache.ts\`). The chat model's context is 1024 tokens (config.pbtxt \`context_length\`, the model's max_position_embeddings), so a ${probe.promptTokens}-token prompt fits with room to answer.`,
      '',
      `**Time to first token**, ms (median over all rounds, p90): a ${probe.promptTokens}-token prompt (shared system prompt + a short question). Cold: the prompt starts with a unique line, nothing of it is cached; warm: the system prompt is cached, only the question's blocks and the last token are prefilled. At ${CONCURRENCY} streams, ${CONCURRENCY} requests start together (one prefill pass for all of them).`,
      '',
      '| streams | cold | warm | prompt tokens reused (warm) | speed-up (median of rounds) | per round |',
      '| ---: | ---: | ---: | ---: | ---: | --- |',
      ...ttftRows,
      '',
      `Target ≥ ${TARGET}× warm: ${summary.join('; ')}. What remains of a warm TTFT is the prefill of the last block or two (the question), the copy of the cached blocks into the pass's past tensors, one sampling step and the worker hop; a cold prefill is quadratic in the prompt's length (attention over ~${probe.promptTokens} positions for each of them), a warm one linear.`,
      '',
      `**Unshared prompts** (no prefix in common: every prompt a miss whose blocks are then hashed and stored): ${CONCURRENCY} concurrent streams of 32 tokens, ${tokens} tokens per round. Cache on: ${perSecond(on)}, ${(Math.max(...on.map((x) => x.reused)) * 100).toFixed(1)}% of prompt tokens reused; off: ${perSecond(off)}; on/off ${change.toFixed(3)} (median of rounds; within noise is the target).`,
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('prefix-cache', 'Issue 20: prefix KV cache, time to first token warm vs cold', body);
  } finally {
    await Promise.all([cached.close(), uncached.close()]);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
