/**
 * Issue 9 (benchmark): reservation latency, p50/p99 — what a completion waits
 * for before it may start: the RESERVE script called directly (Lua, one
 * round trip to Redis) vs the whole path inference takes
 * (lib/billing-client.ts → HTTP keep-alive → billing's route → identity check
 * → the same script), one reservation at a time, side by side in alternating
 * rounds. Billing runs in this process on a private redis-server with
 * append-only persistence; each reservation is through an API key with a
 * (never reached) daily cap, so the cap check is part of the cost.
 *
 *   npx tsx bench/billing-reservation.ts [reservations per round, default 2000] [rounds, default 5]
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { BillingClient } from '../lib/billing-client';
import { generateIdentityKeyPair, IdentitySigner } from '../lib/identity';
import { identityAudience } from '../lib/service-calls';
import { createLogger } from '../lib/log';
import { connectRedis } from '../lib/redis';
import { startRedisServer } from '../scripts/redis-server';
import { Ledger } from '../subgraphs/billing/ledger';
import { startBilling } from '../subgraphs/billing/server';
import { SpendLimits } from '../subgraphs/billing/spend-limits';
import { median } from '../gpu-server/testing/load-generator';
import { loadNote, percentile, recordResult } from './results';

const PER_ROUND = Number(process.argv[2] ?? 2000);
const ROUNDS = Number(process.argv[3] ?? 5);
const TARGET_P99_MS = 2;
const MODEL = 'sluice-chat';

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-reserve-'));
  const server = await startRedisServer(dir);
  const log = createLogger({ bench: 'billing-reservation' });
  const keys = generateIdentityKeyPair();
  process.env.SLUICE_IDENTITY_PUBLIC_KEY = keys.publicKeyPem;
  const billing = await startBilling({ host: '127.0.0.1', port: 0, redisUrl: server.url, log: createLogger({ service: 'billing' }) });
  const redis = connectRedis(server.url, log);
  const client = new BillingClient({ baseUrl: `http://127.0.0.1:${billing.port}` });
  try {
    const user = `bench-${randomUUID()}`;
    const keyId = `key-${randomUUID()}`;
    const ledger = new Ledger(redis, { freeCreditMicros: 5_000_000, reservationTtlMs: 900_000, retentionMs: 86_400_000 });
    await ledger.topUp(user, 500_000_000_000_000, randomUUID());
    await new SpendLimits(redis).set(user, keyId, 400_000_000_000_000, null);
    const identity = new IdentitySigner(createPrivateKey(keys.privateKeyPem), 3600).sign({ sub: user, scopes: ['inference:invoke'], keyId }, identityAudience('inference'));
    const request = () => ({ reservationId: randomUUID(), model: MODEL, promptTokens: 2000, maxCompletionTokens: 1000 });

    const timed = async (calls: number, reserve: () => Promise<unknown>): Promise<number[]> => {
      const ms: number[] = [];
      for (let i = 0; i < calls; i++) {
        const started = process.hrtime.bigint();
        await reserve();
        ms.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
      return ms;
    };
    const direct = () => ledger.reserve({ ...request(), userId: user, keyId });
    const route = () => client.reserve(identity, request());
    await timed(500, direct); // warm-up: script cache, connections, JIT
    await timed(500, route);
    const lua: number[][] = [];
    const http: number[][] = [];
    for (let r = 0; r < ROUNDS; r++) {
      lua.push(await timed(PER_ROUND, direct));
      http.push(await timed(PER_ROUND, route));
    }
    const row = (label: string, rounds: number[][]) => {
      const p50 = median(rounds.map((xs) => percentile(xs, 50)));
      const p99 = median(rounds.map((xs) => percentile(xs, 99)));
      return { p50, p99, line: `| ${label} | ${p50.toFixed(3)} | ${p99.toFixed(3)} | ${rounds.map((xs) => percentile(xs, 99).toFixed(2)).join(', ')} |` };
    };
    const a = row('RESERVE script, direct (`Ledger.reserve`)', lua);
    const b = row('HTTP route via `BillingClient.reserve` (what inference calls)', http);
    const body = [
      `${PER_ROUND} reservations per round, one at a time, ${ROUNDS} alternating rounds; latency in ms (median over rounds of each round's percentile); billing in this process, a private redis-server (appendonly yes) on this machine (\`npx tsx bench/billing-reservation.ts\`).`,
      '',
      '| path | p50 ms | p99 ms | p99 per round |',
      '| --- | ---: | ---: | --- |',
      a.line,
      b.line,
      '',
      `The route costs ${(b.p50 / a.p50).toFixed(1)}× the bare script at p50 (${(b.p50 - a.p50).toFixed(3)} ms added: HTTP on a kept-alive socket, the Ed25519 identity check, JSON). Target p99 < ${TARGET_P99_MS} ms: **${b.p99 < TARGET_P99_MS ? 'met' : 'not met'}** over the route (${b.p99.toFixed(2)} ms), **${a.p99 < TARGET_P99_MS ? 'met' : 'not met'}** for the script (${a.p99.toFixed(2)} ms).`,
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('billing-reservation', '9 Billing: reservation latency', body);
  } finally {
    client.close();
    redis.disconnect();
    await billing.stop();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
