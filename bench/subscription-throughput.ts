/**
 * Issue 4 (b): 100 concurrent completion streams, read through the gateway
 * (graphql-ws → gateway → inference subgraph → gpu-server) vs read directly
 * from the gpu-server over one shared ModelStreamInfer call (what the
 * inference subgraph itself does) — alternating, on one stack, in one run.
 * Figures: delivered tokens/s (server-counted), and time to first token.
 *
 *   npx tsx bench/subscription-throughput.ts
 */
import { randomUUID } from 'node:crypto';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { generationOutputs, generationRequest } from '../subgraphs/inference/completions/generation-tensors';
import { ModelCatalog } from '../subgraphs/inference/models/model-catalog';
import { SharedInferStream } from '../subgraphs/inference/gpu-tier/shared-stream';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { wsClient } from '../test/support/subscriptions';
import { percentile, recordResult } from './results';
import { benchStack } from './stack';

const STREAMS = 100;
const MAX_TOKENS = 32;
const ROUNDS = 3;
const LONE_STREAMS = 30;
const PROMPT = 'Describe a river in a few words.';
const STREAM = `subscription($i: CompletionInput!) { completionStream(input: $i) { delta finishReason usage { completionTokens } } }`;

interface Round {
  tokens: number;
  seconds: number;
  ttftMs: number[];
}

async function main(): Promise<void> {
  await buildModels('gpu-server/model_repository');
  const { stack, token } = await benchStack();
  const triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 30_000);
  const model = (await new ModelCatalog(triton, 60_000).get('sluice-chat'))!;
  // The prompt the subgraph renders from one user message with the default template.
  const prompt = `<|user|>\n${PROMPT}\n<|assistant|>\n`;
  const direct = new SharedInferStream(triton);
  const client = wsClient(stack.gatewayUrl, token);

  const viaDirect = async (seed0: number, streams = STREAMS): Promise<Round> => {
    const started = performance.now();
    const ttft: number[] = [];
    let tokens = 0;
    await Promise.all(
      Array.from({ length: streams }, (_, i) => {
        const t0 = performance.now();
        let first = true;
        return new Promise<void>((resolve, reject) => {
          const request = generationRequest(model, `bench-${randomUUID()}`, [prompt], [{ max_tokens: MAX_TOKENS, temperature: 0.8, top_p: 1, seed: seed0 + i }], true);
          direct.start(request, {
            response: (response, final) => {
              const output = generationOutputs(model, response, 1)[0];
              if (first && output.text) {
                ttft.push(performance.now() - t0);
                first = false;
              }
              tokens += output.outputTokens ?? 0;
              if (final) resolve();
            },
            error: reject,
          });
        });
      }),
    );
    return { tokens, seconds: (performance.now() - started) / 1000, ttftMs: ttft };
  };

  const viaGateway = async (seed0: number, streams = STREAMS): Promise<Round> => {
    const started = performance.now();
    const ttft: number[] = [];
    let tokens = 0;
    await Promise.all(
      Array.from({ length: streams }, async (_, i) => {
        const t0 = performance.now();
        let first = true;
        const input = { model: 'sluice-chat', messages: [{ role: 'user', content: PROMPT }], maxTokens: MAX_TOKENS, temperature: 0.8, seed: seed0 + i };
        for await (const event of client.iterate<{ completionStream: { delta: string; finishReason: string | null; usage: { completionTokens: number } | null } }>({
          query: STREAM,
          variables: { i: input },
        })) {
          if (event.errors) throw new Error(JSON.stringify(event.errors));
          const chunk = event.data!.completionStream;
          if (first && chunk.delta) {
            ttft.push(performance.now() - t0);
            first = false;
          }
          if (chunk.usage) tokens += chunk.usage.completionTokens;
        }
      }),
    );
    return { tokens, seconds: (performance.now() - started) / 1000, ttftMs: ttft };
  };

  try {
    await viaDirect(0);
    await viaGateway(0); // warm-up of both paths
    const d: Round[] = [];
    const g: Round[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      d.push(await viaDirect(r * 1000));
      g.push(await viaGateway(r * 1000));
    }
    // Unloaded: one stream at a time, so time to first token is the path's own latency, not queueing.
    const lone: { d: number[]; g: number[] } = { d: [], g: [] };
    for (let i = 0; i < LONE_STREAMS; i++) {
      lone.d.push(...(await viaDirect(5000 + i, 1)).ttftMs);
      lone.g.push(...(await viaGateway(5000 + i, 1)).ttftMs);
    }
    const loneAdded = percentile(lone.g, 50) - percentile(lone.d, 50);
    const rate = (rounds: Round[]) => rounds.reduce((n, x) => n + x.tokens, 0) / rounds.reduce((n, x) => n + x.seconds, 0);
    const p50 = (rounds: Round[]) =>
      percentile(
        rounds.flatMap((x) => x.ttftMs),
        50,
      );
    const directRate = rate(d);
    const gatewayRate = rate(g);
    const ratio = gatewayRate / directRate;
    const added = p50(g) - p50(d);
    console.log(`unloaded TTFT p50: direct ${percentile(lone.d, 50).toFixed(1)} ms, gateway ${percentile(lone.g, 50).toFixed(1)} ms`);
    console.log(`direct ${directRate.toFixed(0)} tok/s, gateway ${gatewayRate.toFixed(0)} tok/s, ratio ${ratio.toFixed(2)}; TTFT p50 direct ${p50(d).toFixed(1)} ms, gateway ${p50(g).toFixed(1)} ms`);
    recordResult(
      'subscription-throughput',
      'Streams through the gateway vs straight from the gpu-server (issue 4b)',
      `\`npx tsx bench/subscription-throughput.ts\` — ${STREAMS} concurrent streams of ${MAX_TOKENS} tokens (sluice-chat), ${ROUNDS} alternating rounds after a warm-up. Direct: one shared ModelStreamInfer call from the benchmark process. Gateway: graphql-ws to the gateway, which subscribes on the inference subgraph, which shares one ModelStreamInfer call.

| path | tokens/s | time to first token p50 | p99 |
|---|---:|---:|---:|
| gpu-server direct | ${directRate.toFixed(0)} | ${p50(d).toFixed(1)} ms | ${percentile(
        d.flatMap((x) => x.ttftMs),
        99,
      ).toFixed(1)} ms |
| through the gateway | ${gatewayRate.toFixed(0)} | ${p50(g).toFixed(1)} ms | ${percentile(
        g.flatMap((x) => x.ttftMs),
        99,
      ).toFixed(1)} ms |
| one stream at a time, direct | | ${percentile(lone.d, 50).toFixed(1)} ms | ${percentile(lone.d, 99).toFixed(1)} ms |
| one stream at a time, through the gateway | | ${percentile(lone.g, 50).toFixed(1)} ms | ${percentile(lone.g, 99).toFixed(1)} ms |

**Delivered through the gateway: ${ratio.toFixed(2)}× of direct** (target ≥ 0.8: ${ratio >= 0.8 ? 'met' : 'not met'}). **Added time to first token at p50: ${added.toFixed(1)} ms with 100 concurrent streams** (target < 5 ms: ${added < 5 ? 'met' : 'not met'}), **${loneAdded.toFixed(1)} ms for a stream alone** (${loneAdded < 5 ? 'met' : 'not met'}). With 100 streams starting together, time to first token is mostly waiting for the gpu-server's prefill; every process of the stack shares this machine's 2 cores, so the two extra hops (gateway, inference subgraph: WebSocket frames, JSON, per-event execution) take CPU from generation and lengthen that queue. Alone, a stream pays the hops' own latency.`,
    );
  } finally {
    direct.close();
    triton.close();
    await client.dispose();
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
