/**
 * Issue 4 (a): 64 concurrent `complete` requests through the gateway to the
 * batching text-generation model, with batching vs without — side by side in
 * one run, each configuration on its own stack:
 * - batched: the inference subgraph's DataLoader coalesces requests (window
 *   INFERENCE_BATCH_WINDOW_MS=2) and the gpu-server batches dynamically;
 * - DataLoader off: one ModelInfer per request (window 0), the gpu-server
 *   still batching whatever arrives together;
 * - no batching: DataLoader off and the model without dynamic_batching, so
 *   each request is its own execution (what a server without batching does).
 *
 *   npx tsx bench/completions-batching.ts
 */
import { buildModels } from '../gpu-server/scripts/build-models';
import { bearer, gql } from '../test/support/graphql';
import { benchStack, repositoryVariant } from './stack';
import { recordResult } from './results';

const CONCURRENCY = 64;
const ROUNDS = 3;
const MAX_TOKENS = 16;
const COMPLETE = 'mutation($i: CompletionInput!) { complete(input: $i) { text usage { completionTokens } } }';

async function measure(label: string, env: Record<string, string>): Promise<{ label: string; perSecond: number; tokensPerSecond: number }> {
  const { stack, token } = await benchStack(env);
  try {
    const round = (seed0: number) =>
      Promise.all(
        Array.from({ length: CONCURRENCY }, (_, i) =>
          gql(stack.gatewayUrl, COMPLETE, { i: { model: 'sluice-chat-batch', messages: [{ role: 'user', content: `Tell me about river ${i}` }], maxTokens: MAX_TOKENS, temperature: 0.7, seed: seed0 + i } }, bearer(token)),
        ),
      );
    await round(0); // warm-up: model sessions, connections, plans
    let tokens = 0;
    const started = process.hrtime.bigint();
    for (let r = 1; r <= ROUNDS; r++) {
      for (const res of await round(r * 1000)) {
        if (res.errors) throw new Error(`${label}: ${JSON.stringify(res.errors)}`);
        tokens += res.data!.complete.usage.completionTokens;
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const result = { label, perSecond: (ROUNDS * CONCURRENCY) / seconds, tokensPerSecond: tokens / seconds };
    console.log(`${label}: ${result.perSecond.toFixed(1)} completions/s, ${result.tokensPerSecond.toFixed(0)} tokens/s`);
    return result;
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  await buildModels('gpu-server/model_repository');
  const unbatched = repositoryVariant('sluice-chat-batch', (c) => c.replace(/dynamic_batching\s*\{[^}]*\}/, ''));
  try {
    const batched = await measure('DataLoader + server batching', { INFERENCE_BATCH_WINDOW_MS: '2' });
    const loaderOff = await measure('DataLoader off, server batching', { INFERENCE_BATCH_WINDOW_MS: '0' });
    const none = await measure('no batching', { INFERENCE_BATCH_WINDOW_MS: '0', GPU_SERVER_MODEL_REPOSITORY: unbatched.root });
    const ratio = batched.perSecond / none.perSecond;
    const loaderRatio = batched.perSecond / loaderOff.perSecond;
    console.log(`batching vs none: ${ratio.toFixed(2)}x; DataLoader's own share: ${loaderRatio.toFixed(2)}x`);
    recordResult(
      'completions-batching',
      'Completions through the gateway: batching vs none (issue 4a)',
      `\`npx tsx bench/completions-batching.ts\` — ${CONCURRENCY} concurrent \`complete\` requests (model sluice-chat-batch, ${MAX_TOKENS} tokens each, ${ROUNDS} rounds after a warm-up), each configuration on its own stack.

| configuration | completions/s | tokens/s |
|---|---:|---:|
${[batched, loaderOff, none].map((r) => `| ${r.label} | ${r.perSecond.toFixed(1)} | ${r.tokensPerSecond.toFixed(0)} |`).join('\n')}

**Batching vs none: ${ratio.toFixed(2)}×** (target ≥ 3×: ${ratio >= 3 ? 'met' : 'not met'}). The DataLoader's own share over the gpu-server's dynamic batcher alone is ${loaderRatio.toFixed(2)}×: requests that arrive together reach the server together either way, and the server batches them; the DataLoader saves the per-call gRPC and queueing work and guarantees the batch when arrivals spread over its window.`,
    );
  } finally {
    unbatched.remove();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
