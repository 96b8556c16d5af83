/**
 * Benchmark 9: the gateway's response cache, hit vs miss, side by side in one
 * run on the whole stack. For each query, 50 concurrent keep-alive
 * connections send it for a fixed time: "hit" sends the same request (served
 * from Redis after the first), "miss" adds a variable with a new value to
 * each request (never found, so it is looked up, planned, fetched from the
 * subgraphs and stored, the full path of a cacheable miss). Rounds alternate.
 * Every response's `x-cache` is counted: a hit run misses once per max-age
 * (5 s here) when its entry expires, as it would in production.
 *
 *   npx tsx bench/response-cache.ts [rounds, default 3] [seconds per run, default 5] [connections, default 50]
 */
import { Agent, request } from 'node:http';
import * as os from 'node:os';
import { bearer } from '../test/support/graphql';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';

const ROUNDS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 5);
const CONNECTIONS = Number(process.argv[4] ?? 50);

const QUERIES = [
  { label: '`me` (auth; PRIVATE, max-age 5)', query: 'query Me { me { id email name createdAt } }' },
  {
    label: '`models` with prices (inference + billing; PUBLIC, max-age 5)',
    query: 'query Prices { models { id kind ready state platform maxBatchSize contextLength pricing { currency inputCacheHit inputCacheMiss output } } }',
  },
];

interface Run {
  requests: number;
  hits: number;
  latenciesMs: number[];
  seconds: number;
}

/** `connections` loops sending `body()` back to back for `seconds`; every response must be 200, and a MISS when `allMisses`. */
async function load(url: URL, headers: Record<string, string>, body: () => string, allMisses: boolean, seconds: number): Promise<Run> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latenciesMs: number[] = [];
  let hits = 0;
  const started = process.hrtime.bigint();
  const until = Date.now() + seconds * 1000;
  const send = (payload: string) =>
    new Promise<void>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers } }, (res) => {
        res.resume();
        res.on('end', () => {
          latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
          const status = res.headers['x-cache'];
          if (status === 'HIT') hits++;
          if (res.statusCode !== 200 || (status !== 'HIT' && status !== 'MISS') || (allMisses && status !== 'MISS')) {
            reject(new Error(`expected 200 and x-cache ${allMisses ? 'MISS' : 'HIT or MISS'}, got ${res.statusCode} and ${status}`));
          } else resolve();
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < until) await send(body());
    }),
  );
  agent.destroy();
  return { requests: latenciesMs.length, hits, latenciesMs, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

const median = (values: number[]) => percentile(values, 50);

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const { stack, token } = await benchStack();
  const url = new URL(stack.gatewayUrl);
  const headers = bearer(token);
  let nonce = 0;
  try {
    const rows: string[] = [];
    for (const { label, query } of QUERIES) {
      const hitBody = JSON.stringify({ query });
      // A variable the operation does not declare: ignored by execution, but part of the cache key, so each request misses.
      const missBody = () => JSON.stringify({ query, variables: { nonce: `${process.pid}-${++nonce}` } });
      // Warm-up (plans, connection pools, JIT); the first request of the hit warm-up stores the entry.
      await load(url, headers, missBody, true, 1);
      await load(url, headers, () => hitBody, false, 1);
      const hits: Run[] = [];
      const misses: Run[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        hits.push(await load(url, headers, () => hitBody, false, SECONDS));
        misses.push(await load(url, headers, missBody, true, SECONDS));
      }
      const hitRatio = hits.reduce((n, r) => n + r.hits, 0) / hits.reduce((n, r) => n + r.requests, 0);
      const rate = (runs: Run[]) => median(runs.map((r) => r.requests / r.seconds));
      const p = (runs: Run[], q: number) =>
        percentile(
          runs.flatMap((r) => r.latenciesMs),
          q,
        );
      const [hitRate, missRate] = [rate(hits), rate(misses)];
      rows.push(
        `| ${label} | hit (${(hitRatio * 100).toFixed(2)} % HIT) | ${hitRate.toFixed(0)} | ${p(hits, 50).toFixed(2)} | ${p(hits, 99).toFixed(2)} | **${(hitRate / missRate).toFixed(1)}×** |`,
        `| | miss | ${missRate.toFixed(0)} | ${p(misses, 50).toFixed(2)} | ${p(misses, 99).toFixed(2)} | 1× |`,
      );
    }
    const body = [
      `The whole stack (\`benchStack\`, gateway with its default workers, Redis server), the load generator in the same machine: ${CONNECTIONS} concurrent keep-alive connections, ${ROUNDS} alternating rounds of ${SECONDS} s per case, requests/s the median of the rounds, latencies over all rounds (\`npx tsx bench/response-cache.ts\`).`,
      '',
      '| query | cache | requests/s | p50 ms | p99 ms | hit / miss |',
      '| --- | --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      'A hit is one Redis MGET and a JSON parse in the gateway, no planning and no subgraph fetch; a miss is the lookup, the full execution and one SET. The hit runs miss when their entry expires (max-age 5 s: the requests in flight at that moment miss together and store it again); every miss-run response was checked to be a MISS.',
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('response-cache', '9 Response cache: hit vs miss', body);
  } finally {
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
