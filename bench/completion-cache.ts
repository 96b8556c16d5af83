/**
 * Issue 8, item 8 (cache part): a repeatable completion answered from the
 * response cache vs generated, side by side in one run on one stack, through
 * the gateway: 16 concurrent clients sending `complete` on sluice-chat-batch
 * (temperature 0, 32 tokens, `cache: true`) — misses with a new prompt each
 * time, hits with prompts stored beforehand.
 *
 *   npx tsx bench/completion-cache.ts
 */
import * as os from 'node:os';
import { bearer, gql } from '../test/support/graphql';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';

const CLIENTS = 16;
const REQUESTS = 320;
const QUERY = 'mutation($i: CompletionInput!) { complete(input: $i) { cacheStatus } }';

async function main() {
  const { stack, token } = await benchStack();
  try {
    const request = (prompt: string) => ({ i: { model: 'sluice-chat-batch', messages: [{ role: 'user', content: prompt }], maxTokens: 32, temperature: 0, cache: true } });
    const run = async (label: string, prompt: (i: number) => string, expected: string) => {
      const latencies: number[] = [];
      let next = 0;
      const started = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: CLIENTS }, async () => {
          while (next < REQUESTS) {
            const i = next++;
            const t = process.hrtime.bigint();
            const res = await gql(stack.gatewayUrl, QUERY, request(prompt(i)), bearer(token));
            latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
            if (res.data?.complete.cacheStatus !== expected) throw new Error(`${label}: expected ${expected}, got ${JSON.stringify(res.errors ?? res.data)}`);
          }
        }),
      );
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const result = { label, perSecond: REQUESTS / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
      process.stdout.write(`${label}: ${result.perSecond.toFixed(0)} req/s, p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms\n`);
      return result;
    };
    const stored = (i: number) => `Tell me about river ${i}`;
    await run('warm-up and fill', stored, 'MISS');
    const loadAtStart = os.loadavg()[0];
    const miss = await run('miss (generated)', (i) => `Tell me about mountain ${i} ${Date.now()}`, 'MISS');
    const hit = await run('hit (from the cache)', stored, 'HIT');
    const ratio = hit.perSecond / miss.perSecond;
    recordResult(
      'completion-cache',
      'Issue 8: response cache, hit vs miss',
      [
        `Command: \`npx tsx bench/completion-cache.ts\`. ${CLIENTS} concurrent clients, ${REQUESTS} \`complete\` requests each way through the gateway, sluice-chat-batch, temperature 0, 32 tokens, \`cache: true\`.`,
        '',
        '| | requests/s | p50 ms | p99 ms |',
        '|---|---|---|---|',
        ...[miss, hit].map((r) => `| ${r.label} | ${r.perSecond.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} |`),
        '',
        `**Hit / miss throughput: ${ratio.toFixed(1)}×.** A hit still reserves and settles its (cache-hit) price with billing, so it costs two Redis round trips and the gateway's own work, but no GPU. ${loadNote(loadAtStart)}`,
      ].join('\n'),
    );
  } finally {
    await stack.stop();
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
