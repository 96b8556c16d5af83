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
import { buildModels } from '../gpu-server/model-builder/build-models';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql } from '../test/support/graphql';
import { benchStack, repositoryVariant } from './stack';
import { recordResult } from './results';

const CONCURRENCY = 64;
const ROUNDS = 3;
const MAX_TOKENS = 16;
const COMPLETE = 'mutation($i: CompletionInput!) { complete(input: $i) { text usage { completionTokens } } }';

interface Measured {
  label: string;
  perSecond: number;
  tokensPerSecond: number;
  /** Share of the wall time the model spent computing (the gpu-server's compute_infer). */
  modelShare: number;
  executions: number;
}

async function measure(label: string, env: Record<string, string>): Promise<Measured> {
  const { stack, token } = await benchStack(env);
  const triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 30_000);
  const modelStats = async () => (await triton.modelStatistics('sluice-chat-batch')).model_stats[0];
  try {
    const round = (seed0: number) =>
      Promise.all(
        Array.from({ length: CONCURRENCY }, (_, i) =>
          gql(
            stack.gatewayUrl,
            COMPLETE,
            { i: { model: 'sluice-chat-batch', messages: [{ role: 'user', content: `Tell me about river ${i}` }], maxTokens: MAX_TOKENS, temperature: 0.7, seed: seed0 + i } },
            bearer(token),
          ),
        ),
      );
    await round(0); // warm-up: model sessions, connections, plans
    let tokens = 0;
    const before = await modelStats();
    const started = process.hrtime.bigint();
    for (let r = 1; r <= ROUNDS; r++) {
      for (const res of await round(r * 1000)) {
        if (res.errors) throw new Error(`${label}: ${JSON.stringify(res.errors)}`);
        tokens += res.data!.complete.usage.completionTokens;
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const after = await modelStats();
    const computeSeconds = (Number(after.inference_stats!.compute_infer!.ns) - Number(before.inference_stats!.compute_infer!.ns)) / 1e9;
    const requests = Number(after.inference_stats!.compute_infer!.count) - Number(before.inference_stats!.compute_infer!.count);
    const executions = Number(after.execution_count) - Number(before.execution_count);
    const result = {
      label,
      perSecond: (ROUNDS * CONCURRENCY) / seconds,
      tokensPerSecond: tokens / seconds,
      // compute_infer adds a batch's execution time once for each request in it: divide by requests per execution.
      modelShare: Math.min(1, (computeSeconds * executions) / Math.max(1, requests) / seconds),
      executions,
    };
    console.log(
      `${label}: ${result.perSecond.toFixed(1)} completions/s, ${result.tokensPerSecond.toFixed(0)} tokens/s, ${result.executions} executions, model busy ${(result.modelShare * 100).toFixed(0)} % of the time`,
    );
    return result;
  } finally {
    triton.close();
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

| configuration | completions/s | tokens/s | model executions | model busy |
|---|---:|---:|---:|---:|
${[batched, loaderOff, none].map((r) => `| ${r.label} | ${r.perSecond.toFixed(1)} | ${r.tokensPerSecond.toFixed(0)} | ${r.executions} | ${(r.modelShare * 100).toFixed(0)} % |`).join('\n')}

**Batching vs none: ${ratio.toFixed(2)}×** (target ≥ 3×: ${ratio >= 3 ? 'met' : 'not met'}). The DataLoader's own share over the gpu-server's dynamic batcher alone is ${loaderRatio.toFixed(2)}×: requests that arrive together reach the server together either way and the server batches them, so ${loaderRatio >= 1.1 ? 'the DataLoader adds what it saves in per-call gRPC and queueing work' : 'on one machine its gain is within the noise'}. The model is busy ${(batched.modelShare * 100).toFixed(0)} % of the time with batching and ${(none.modelShare * 100).toFixed(0)} % without, so the GPU tier's arithmetic, not the GraphQL path, sets both figures: generation on this 2-core CPU is bound by per-token arithmetic, so a 16-sequence decode step costs several times a 1-sequence one (9(c): 16 streams give about 3× the tokens of 1), and batching saves only the fixed cost per step and per call. On a GPU, where a decode step costs about the same for 1 or 16 sequences, the same code would batch far better.`,
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
