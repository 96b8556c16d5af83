/**
 * Issue 16: the OpenAI-compatible door against the GraphQL doors it runs
 * through, alternating, on one stack, in one run, the same load on both:
 *
 * - streams: 50 concurrent completions of 32 tokens through
 *   /v1/chat/completions (SSE) and through graphql-ws `completionStream`;
 *   delivered tokens/s (server-counted usage) and time to first token, and
 *   time to first token one stream at a time (the door's own latency);
 * - whole completions: requests/s with 16 clients in a loop through
 *   /v1/chat/completions and through the `complete` mutation over HTTP.
 *
 * No seed is sent, so the response cache is bypassed on both sides (every
 * request is generated). The clients are bench/support/stream-doors.ts's
 * lean ones, holding their connections between streams; the client's CPU per
 * token is reported, since it shares the machine's two cores.
 *
 *   npx tsx bench/openai-api.ts [rounds] [lone streams] [seconds of whole completions]
 */
import os from 'node:os';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';
import { type Round, streamDoors } from './support/stream-doors';

const STREAMS = 50;
const MAX_TOKENS = 32;
const ROUNDS = Number(process.argv[2] ?? 16);
const LONE_STREAMS = Number(process.argv[3] ?? 30);
const CLIENTS = 16;
const WHOLE_SECONDS = Number(process.argv[4] ?? 8);
const WHOLE_MAX_TOKENS = 4;
const PROMPT = 'Describe a river in a few words.';
const MESSAGES = [{ role: 'user', content: PROMPT }];
const COMPLETE = 'mutation($i: CompletionInput!) { complete(input: $i) { text usage { completionTokens } } }';

async function main(): Promise<void> {
  const loadAtStart = os.loadavg()[0];
  const { stack, token } = await benchStack();
  const v1 = stack.gatewayUrl.replace(/\/graphql$/, '/v1');
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const doors = streamDoors(stack, token, { streams: STREAMS, maxTokens: MAX_TOKENS, messages: MESSAGES });
  const viaSse = doors.sse;
  const viaWs = doors.graphqlWs;

  /** Whole completions per second from CLIENTS clients in a loop for WHOLE_SECONDS. */
  const wholeRate = async (request: () => Promise<void>): Promise<number> => {
    const deadline = performance.now() + WHOLE_SECONDS * 1000;
    let done = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (performance.now() < deadline) {
          await request();
          done++;
        }
      }),
    );
    return done / ((performance.now() - started) / 1000);
  };
  const wholeV1 = async () => {
    const response = await fetch(`${v1}/chat/completions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ model: 'sluice-chat-batch', messages: MESSAGES, max_tokens: WHOLE_MAX_TOKENS, temperature: 0.8 }),
    });
    const body = (await response.json()) as { choices?: unknown[]; error?: unknown };
    if (response.status !== 200 || !body.choices) throw new Error(`/v1/chat/completions answered ${response.status}: ${JSON.stringify(body)}`);
  };
  const wholeGraphql = async () => {
    const input = { model: 'sluice-chat-batch', messages: MESSAGES, maxTokens: WHOLE_MAX_TOKENS, temperature: 0.8 };
    const response = await fetch(stack.gatewayUrl, { method: 'POST', headers, body: JSON.stringify({ query: COMPLETE, variables: { i: input } }) });
    const body = (await response.json()) as { data?: unknown; errors?: unknown };
    if (response.status !== 200 || body.errors) throw new Error(`complete answered ${response.status}: ${JSON.stringify(body)}`);
  };

  try {
    await viaSse();
    await viaWs(); // warm-up of both paths
    const sse: Round[] = [];
    const gws: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      sse.push(await viaSse());
      gws.push(await viaWs());
    }
    const lone: { sse: number[]; ws: number[] } = { sse: [], ws: [] };
    for (let i = 0; i < LONE_STREAMS; i++) {
      lone.sse.push(...(await viaSse(1)).ttftMs);
      lone.ws.push(...(await viaWs(1)).ttftMs);
    }
    await wholeRate(wholeV1);
    await wholeRate(wholeGraphql); // warm-up
    const whole = { v1: [] as number[], graphql: [] as number[] };
    for (let r = 0; r < 2; r++) {
      whole.v1.push(await wholeRate(wholeV1));
      whole.graphql.push(await wholeRate(wholeGraphql));
    }

    const rate = (rounds: Round[]) => rounds.reduce((n, x) => n + x.tokens, 0) / rounds.reduce((n, x) => n + x.seconds, 0);
    const ttfts = (rounds: Round[]) => rounds.flatMap((x) => x.ttftMs);
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const clientUsPerToken = (rounds: Round[]) => ((rounds.reduce((n, x) => n + x.clientCpuMs, 0) / rounds.reduce((n, x) => n + x.tokens, 0)) * 1000).toFixed(0);
    const streamRatio = rate(sse) / rate(gws);
    const addedLoaded = percentile(ttfts(sse), 50) - percentile(ttfts(gws), 50);
    const addedLone = percentile(lone.sse, 50) - percentile(lone.ws, 50);
    const wholeRatio = mean(whole.v1) / mean(whole.graphql);
    const met = (ok: boolean) => (ok ? 'met' : 'not met');
    console.log(
      `streams: SSE ${rate(sse).toFixed(0)} tok/s, graphql-ws ${rate(gws).toFixed(0)} tok/s (${streamRatio.toFixed(2)}×); added TTFT p50 ${addedLoaded.toFixed(1)} ms loaded, ${addedLone.toFixed(1)} ms alone`,
    );
    console.log(`whole: /v1 ${mean(whole.v1).toFixed(1)} req/s, complete ${mean(whole.graphql).toFixed(1)} req/s (${wholeRatio.toFixed(2)}×)`);
    recordResult(
      'openai-api',
      'The OpenAI-compatible door against the GraphQL doors (issue 16)',
      `\`npx tsx bench/openai-api.ts\` — the same load through /v1 and through GraphQL, alternating on one stack. Streams: ${STREAMS} concurrent completions of ${MAX_TOKENS} tokens (sluice-chat), ${ROUNDS} rounds after a warm-up, then ${LONE_STREAMS} one at a time. Whole completions: ${CLIENTS} clients in a loop for ${WHOLE_SECONDS} s (sluice-chat-batch, ${WHOLE_MAX_TOKENS} tokens), 2 rounds each after a warm-up. No seed: the response cache is bypassed on both sides.

| path | tokens/s | time to first token p50 | p99 | alone p50 | alone p99 | client CPU per token |
|---|---:|---:|---:|---:|---:|---:|
| /v1/chat/completions, SSE | ${rate(sse).toFixed(0)} | ${percentile(ttfts(sse), 50).toFixed(1)} ms | ${percentile(ttfts(sse), 99).toFixed(1)} ms | ${percentile(lone.sse, 50).toFixed(1)} ms | ${percentile(lone.sse, 99).toFixed(1)} ms | ${clientUsPerToken(sse)} µs |
| completionStream, graphql-ws | ${rate(gws).toFixed(0)} | ${percentile(ttfts(gws), 50).toFixed(1)} ms | ${percentile(ttfts(gws), 99).toFixed(1)} ms | ${percentile(lone.ws, 50).toFixed(1)} ms | ${percentile(lone.ws, 99).toFixed(1)} ms | ${clientUsPerToken(gws)} µs |

| path | whole completions/s |
|---|---:|
| /v1/chat/completions | ${mean(whole.v1).toFixed(1)} |
| \`complete\` mutation over HTTP | ${mean(whole.graphql).toFixed(1)} |

**Streamed tokens/s through SSE: ${streamRatio.toFixed(2)}× of graphql-ws** (target ≥ 0.95: ${met(streamRatio >= 0.95)}). **Added time to first token at p50: ${addedLoaded.toFixed(1)} ms with ${STREAMS} streams, ${addedLone.toFixed(1)} ms for a stream alone** (target ≤ 1 ms: ${met(addedLoaded <= 1)} loaded, ${met(addedLone <= 1)} alone). **Whole completions through /v1: ${wholeRatio.toFixed(2)}× of the mutation** (target ≥ 0.95: ${met(wholeRatio >= 0.95)}). Both doors run the same operation through the same pipeline; the SSE door opens one HTTP request per stream where graphql-ws multiplexes them on one socket, and it waits for the first event before answering (so a refusal gets its status).

${loadNote(loadAtStart)}.`,
    );
  } finally {
    await doors.close();
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
