/**
 * Issues 4 (b) and 19 (3): 100 concurrent completion streams, read hop by hop
 * — directly from the gpu-server over one shared ModelStreamInfer call (what
 * the inference subgraph itself does), from the inference subgraph over
 * graphql-ws (with an identity signed as the gateway signs it), and through
 * the gateway (graphql-ws → gateway → inference subgraph → gpu-server) —
 * alternating, on one stack, in one run. Figures: delivered tokens/s
 * (server-counted), and time to first token, so each hop's share is the
 * difference between two rows measured here. Every path holds its
 * connection between streams (the graphql-ws clients close none while idle),
 * as the direct path holds its call: else each lone stream through the
 * gateway would pay two WebSocket handshakes, the client's and the gateway's
 * own upstream one, that the direct path never pays.
 *
 *   npx tsx bench/subscription-throughput.ts [rounds] [lone streams]
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import os from 'node:os';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { BillingClient } from '../lib/billing-client';
import { IDENTITY_HEADER, IdentitySigner } from '../lib/identity';
import { identityAudience } from '../lib/service-calls';
import { generationOutputs, generationRequest } from '../subgraphs/inference/completions/generation-tensors';
import { ModelCatalog } from '../subgraphs/inference/models/model-catalog';
import { SharedInferStream } from '../subgraphs/inference/gpu-tier/shared-stream';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { wsClient } from '../test/support/subscriptions';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';

const STREAMS = 100;
const MAX_TOKENS = 32;
const ROUNDS = Number(process.argv[2] ?? 3);
const LONE_STREAMS = Number(process.argv[3] ?? 30);
const PROMPT = 'Describe a river in a few words.';
const STREAM = `subscription($i: CompletionInput!) { completionStream(input: $i) { delta finishReason usage { completionTokens } } }`;

interface Round {
  tokens: number;
  seconds: number;
  ttftMs: number[];
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  await buildModels('gpu-server/model_repository');
  const { stack, token } = await benchStack();
  const triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 30_000);
  const model = (await new ModelCatalog(triton, 60_000).get('sluice-chat'))!;
  // The prompt the subgraph renders from one user message with the default template.
  const prompt = `<|user|>\n${PROMPT}\n<|assistant|>\n`;
  const direct = new SharedInferStream(triton);
  const client = wsClient(stack.gatewayUrl, token, { keepOpen: true });

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

  // Over graphql-ws, as a client speaks to the gateway and the gateway to the inference subgraph.
  const viaGraphQLWs =
    (ws: Client, extensions?: Record<string, unknown>) =>
    async (seed0: number, streams = STREAMS): Promise<Round> => {
      const started = performance.now();
      const ttft: number[] = [];
      let tokens = 0;
      await Promise.all(
        Array.from({ length: streams }, async (_, i) => {
          const t0 = performance.now();
          let first = true;
          const input = { model: 'sluice-chat', messages: [{ role: 'user', content: PROMPT }], maxTokens: MAX_TOKENS, temperature: 0.8, seed: seed0 + i };
          for await (const event of ws.iterate<{ completionStream: { delta: string; finishReason: string | null; usage: { completionTokens: number } | null } }>({
            query: STREAM,
            variables: { i: input },
            extensions,
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
  // The subgraph directly: the caller's identity signed for it with the stack's key, as the gateway signs it.
  const session = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { sub: string; scopes: string[]; jti: string };
  const identity = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY!), 3600).sign(
    { sub: session.sub, scopes: session.scopes, sessionId: session.jti },
    identityAudience('inference'),
  );
  const subgraphClient = createClient({
    url: `ws://127.0.0.1:${stack.ports.inference}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { [IDENTITY_HEADER]: identity },
    // Held open between streams, as the gateway's client and the direct path's ModelStreamInfer call are.
    lazyCloseTimeout: 10 * 60_000,
    retryAttempts: 0,
  });
  const viaSubgraph = viaGraphQLWs(subgraphClient, { [IDENTITY_HEADER]: identity });
  const viaGateway = viaGraphQLWs(client);
  // What the subgraph awaits before it writes a request to the gpu-server: its billing reservation, over the same route.
  // Priced at one token each way, so the holds (released only when they expire) leave the bench user's credit for the streams.
  const billing = new BillingClient({ baseUrl: `http://127.0.0.1:${stack.ports.billing}` });
  const reservations = async (n: number): Promise<number[]> =>
    Promise.all(
      Array.from({ length: n }, async () => {
        const t0 = performance.now();
        await billing.reserve(identity, { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 });
        return performance.now() - t0;
      }),
    );
  const paths = [
    { name: 'gpu-server direct', run: viaDirect },
    { name: 'inference subgraph over graphql-ws', run: viaSubgraph },
    { name: 'through the gateway', run: viaGateway },
  ];

  try {
    for (const path of paths) await path.run(0); // warm-up of every path
    const loaded: Round[][] = paths.map(() => []);
    for (let r = 1; r <= ROUNDS; r++) for (const [p, path] of paths.entries()) loaded[p].push(await path.run(r * 1000));
    // Unloaded: one stream at a time, so time to first token is the path's own latency, not queueing.
    const lone: number[][] = paths.map(() => []);
    for (let i = 0; i < LONE_STREAMS; i++) for (const [p, path] of paths.entries()) lone[p].push(...(await path.run(5000 + i, 1)).ttftMs);
    const reserveLone: number[] = [];
    for (let i = 0; i < LONE_STREAMS; i++) reserveLone.push(...(await reservations(1)));
    const reserveLoaded = await reservations(STREAMS);
    const rate = (rounds: Round[]) => rounds.reduce((n, x) => n + x.tokens, 0) / rounds.reduce((n, x) => n + x.seconds, 0);
    const ttft = (rounds: Round[], p: number) =>
      percentile(
        rounds.flatMap((x) => x.ttftMs),
        p,
      );
    const rows = paths.map((path, p) => ({
      name: path.name,
      rate: rate(loaded[p]),
      p50: ttft(loaded[p], 50),
      p99: ttft(loaded[p], 99),
      loneP50: percentile(lone[p], 50),
      loneP99: percentile(lone[p], 99),
    }));
    const [direct, subgraph, gateway] = rows;
    const ratio = gateway.rate / direct.rate;
    const added = gateway.p50 - direct.p50;
    const loneAdded = gateway.loneP50 - direct.loneP50;
    const ms = (x: number) => `${x.toFixed(1)} ms`;
    for (const row of rows) console.log(`${row.name}: ${row.rate.toFixed(0)} tok/s, TTFT p50 ${ms(row.p50)} p99 ${ms(row.p99)}; alone p50 ${ms(row.loneP50)} p99 ${ms(row.loneP99)}`);
    recordResult(
      'subscription-throughput',
      'Streams through the gateway vs straight from the gpu-server (issues 4b, 19)',
      `\`npx tsx bench/subscription-throughput.ts\` — ${STREAMS} concurrent streams of ${MAX_TOKENS} tokens (sluice-chat), ${ROUNDS} alternating rounds after a warm-up, then ${LONE_STREAMS} streams one at a time on each path. Direct: one shared ModelStreamInfer call from the benchmark process. Subgraph: graphql-ws straight to the inference subgraph (identity signed as the gateway signs it), which shares one ModelStreamInfer call. Gateway: graphql-ws to the gateway, which subscribes on the inference subgraph. Each graphql-ws client holds its connection open between streams, as the direct path holds its call.

| path | tokens/s | time to first token p50 | p99 | alone p50 | alone p99 |
|---|---:|---:|---:|---:|---:|
${rows.map((row) => `| ${row.name} | ${row.rate.toFixed(0)} | ${ms(row.p50)} | ${ms(row.p99)} | ${ms(row.loneP50)} | ${ms(row.loneP99)} |`).join('\n')}
| billing reservation (awaited by the subgraph before the gpu-server) | | ${ms(percentile(reserveLoaded, 50))} | ${ms(percentile(reserveLoaded, 99))} | ${ms(percentile(reserveLone, 50))} | ${ms(percentile(reserveLone, 99))} |

Per hop, time to first token at p50 (each row minus the one before it): the inference subgraph adds ${ms(subgraph.loneP50 - direct.loneP50)} alone and ${ms(subgraph.p50 - direct.p50)} with ${STREAMS} streams; the gateway adds ${ms(gateway.loneP50 - subgraph.loneP50)} alone and ${ms(gateway.p50 - subgraph.p50)} with ${STREAMS} streams. Of the subgraph's share, its billing reservation (last row: ${STREAMS} at once, or one at a time, over the route the subgraph calls) is ${ms(percentile(reserveLone, 50))} alone and ${ms(percentile(reserveLoaded, 50))} at p50 with ${STREAMS} at once: no request reaches the gpu-server before its cost is held. Tokens/s: the subgraph delivers ${(subgraph.rate / direct.rate).toFixed(2)}× of direct, the gateway ${(gateway.rate / subgraph.rate).toFixed(2)}× of the subgraph.

**Delivered through the gateway: ${ratio.toFixed(2)}× of direct** (target ≥ 0.9: ${ratio >= 0.9 ? 'met' : 'not met'}). **Added time to first token at p50: ${ms(added)} with ${STREAMS} concurrent streams** (target ≤ 20 ms: ${added <= 20 ? 'met' : 'not met'}), **${ms(loneAdded)} for a stream alone** (target ≤ 3 ms: ${loneAdded <= 3 ? 'met' : 'not met'}). With ${STREAMS} streams starting together, time to first token is mostly waiting for the gpu-server's prefill; every process of the stack shares this machine's cores, so the extra hops take CPU from generation and lengthen that queue. Alone, a stream pays the hops' own latency.

${loadNote(loadBefore)}`,
    );
  } finally {
    direct.close();
    triton.close();
    await client.dispose();
    await subgraphClient.dispose();
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
