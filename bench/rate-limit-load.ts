/**
 * Issue 7, item 9 (load test): two gateway processes sharing one Redis admit
 * exactly the configured limit out of 10,000 concurrent requests. The whole
 * stack runs with `GATEWAY_RATE_LIMITS=anonymous:rpm=<limit>`, a second
 * gateway process joins it on the same Redis, and every request — an
 * anonymous `{ __typename }` from one (forwarded) client address — is sent at
 * once, alternately to each gateway. Counted: 200s (admitted) and 429s
 * (RATE_LIMITED); anything else is a failure.
 *
 *   npx tsx bench/rate-limit-load.ts [requests, default 10000] [limit, default 1000]
 *
 * test/rate-limits.e2e.test.ts runs the same procedure at 2,000 requests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import path from 'node:path';
import { freePort } from '../scripts/free-port';
import type { TestStack } from '../test/support/stack';
import { startTestStack } from '../test/support/stack';
import { loadNote, percentile, recordResult } from './results';

const ROOT = path.resolve(__dirname, '..');

/** Another gateway process on the stack's Redis and subgraphs (the stack's own environment), on a free port. */
export async function startSecondGateway(stack: TestStack, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'gateway/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, ...stack.env, ...env, GATEWAY_PORT: String(port) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (
    let i = 0;
    !(await fetch(`${base}/health`).then(
      (r) => r.ok,
      () => false,
    ));
    i++
  ) {
    if (i > 600 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`the second gateway did not become ready on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url: `${base}/graphql`,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface LoadResult {
  admitted: number;
  refused: number;
  /** Responses that were neither 200 nor 429, by status (0: the request failed). */
  other: Record<number, number>;
  /** Refusals whose body was RATE_LIMITED with `retryAfter` and whose headers had `Retry-After` and `RateLimit-Remaining: 0`. */
  wellFormedRefusals: number;
  /** Admitted responses carrying the RateLimit headers. */
  admittedWithHeaders: number;
  admittedBy: number[];
  elapsedMs: number;
  latenciesMs: number[];
}

/** Sends `total` anonymous `{ __typename }` requests all at once, alternately to each URL, as the client at `clientIp` (X-Forwarded-For). */
export async function fireConcurrently(urls: readonly string[], total: number, clientIp: string): Promise<LoadResult> {
  const result: LoadResult = { admitted: 0, refused: 0, other: {}, wellFormedRefusals: 0, admittedWithHeaders: 0, admittedBy: urls.map(() => 0), elapsedMs: 0, latenciesMs: [] };
  const body = JSON.stringify({ query: '{ __typename }' });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: total }, async (_, i) => {
      const target = i % urls.length;
      const sent = performance.now();
      let status = 0;
      try {
        const response = await fetch(urls[target], { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': clientIp }, body });
        status = response.status;
        const json = (await response.json()) as { errors?: Array<{ extensions?: Record<string, unknown> }> };
        if (status === 200) {
          result.admitted++;
          result.admittedBy[target]++;
          if (response.headers.get('ratelimit-limit') && response.headers.get('ratelimit-remaining')) result.admittedWithHeaders++;
        } else if (status === 429) {
          result.refused++;
          const extensions = json.errors?.[0]?.extensions ?? {};
          if (extensions.code === 'RATE_LIMITED' && typeof extensions.retryAfter === 'number' && response.headers.get('retry-after') && response.headers.get('ratelimit-remaining') === '0')
            result.wellFormedRefusals++;
        }
      } catch {
        status = 0;
      }
      if (status !== 200 && status !== 429) result.other[status] = (result.other[status] ?? 0) + 1;
      result.latenciesMs.push(performance.now() - sent);
    }),
  );
  result.elapsedMs = performance.now() - started;
  return result;
}

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 10_000);
  const limit = Number(process.argv[3] ?? 1_000);
  const loadBefore = os.loadavg()[0];
  // Trusting X-Forwarded-For lets the load come from an address no other request uses.
  const env = { SLUICE_LOG_LEVEL: 'error', GATEWAY_TRUST_PROXY: 'true', GATEWAY_RATE_LIMITS: `anonymous:rpm=${limit}` };
  const stack = await startTestStack(env);
  const second = await startSecondGateway(stack, env);
  try {
    const clientIp = `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.1`;
    const result = await fireConcurrently([stack.gatewayUrl, second.url], total, clientIp);
    const exact = result.admitted === limit && result.refused === total - limit && Object.keys(result.other).length === 0;
    const line = `${total} concurrent requests over 2 gateway processes, limit ${limit}/min: admitted ${result.admitted} (${result.admittedBy.join(' + ')}), refused ${result.refused} (429), other ${JSON.stringify(result.other)} in ${(result.elapsedMs / 1000).toFixed(2)} s — ${exact ? 'EXACT' : 'NOT EXACT'}`;
    process.stdout.write(`${line}\n`);
    recordResult(
      'rate-limit-load',
      'Rate limits: two gateways, one Redis, 10,000 concurrent requests',
      [
        `\`npx tsx bench/rate-limit-load.ts ${total} ${limit}\`: the whole stack (separate processes, a private redis-server) with \`GATEWAY_RATE_LIMITS=anonymous:rpm=${limit}\` and a second gateway process on the same Redis; ${total} anonymous \`{ __typename }\` requests from one client address (X-Forwarded-For, \`GATEWAY_TRUST_PROXY=true\`), all sent at once from one client process, alternately to each gateway.`,
        '',
        '| requests | limit (per minute) | admitted (200) | by gateway | refused (429, RATE_LIMITED) | well-formed refusals¹ | admitted with RateLimit headers | other | wall time | p50 / p99 latency |',
        '| ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |',
        `| ${total} | ${limit} | **${result.admitted}** | ${result.admittedBy.join(' + ')} | ${result.refused} | ${result.wellFormedRefusals} | ${result.admittedWithHeaders} | ${JSON.stringify(result.other)} | ${(result.elapsedMs / 1000).toFixed(2)} s | ${percentile(result.latenciesMs, 50).toFixed(0)} / ${percentile(result.latenciesMs, 99).toFixed(0)} ms |`,
        '',
        `Result: ${exact ? `exactly the limit was admitted (${limit} of ${total}); every other request was refused.` : 'NOT exact — see the row above.'} Each decision is one Lua script on Redis (a sliding window of one-second buckets), so the two processes cannot both take the last unit.`,
        '',
        '¹ 429 with `extensions.code` RATE_LIMITED and a numeric `retryAfter`, and the headers `Retry-After` and `RateLimit-Remaining: 0`.',
        '',
        loadNote(loadBefore),
      ].join('\n'),
    );
    if (!exact) process.exitCode = 1;
  } finally {
    await second.stop();
    await stack.stop();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
