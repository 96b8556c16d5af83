/**
 * Issue 9 (benchmark): settlement throughput — usage events per second that
 * billing's consumer settles (XREADGROUP → one SETTLE script per event →
 * XACK), with batches of 256 settled in one pipeline vs one event at a time,
 * side by side in alternating rounds on a private redis-server with
 * append-only persistence (as deployed). Each event has a reservation, so each
 * settlement also releases a hold, as in production.
 *
 *   npx tsx bench/billing-settlement.ts [events per round, default 20000] [rounds, default 3]
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { createLogger } from '../lib/log';
import { connectRedis } from '../lib/redis';
import { encodeUsageEvent, USAGE_EVENTS_STREAM, type UsageEvent } from '../lib/usage-events';
import { startRedisServer } from '../scripts/redis-server';
import { Ledger } from '../subgraphs/billing/ledger';
import { UsageSettlement } from '../subgraphs/billing/settlement';
import { USAGE_CONSUMER_GROUP, UsageStreamConsumer } from '../subgraphs/billing/usage-consumer';
import { median } from '../gpu-server/testing/load-generator';
import { loadNote, recordResult } from './results';

const EVENTS = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const TARGET = 5_000;
const MODEL = 'sluice-chat';
const OPTIONS = { freeCreditMicros: 5_000_000, reservationTtlMs: 900_000, retentionMs: 86_400_000 };
const log = createLogger({ bench: 'billing-settlement' });
log.info = () => undefined;

/** Reserves and publishes `EVENTS` completions of 100 users (not timed), as inference would before and after each. */
async function prepare(redis: Redis, ledger: Ledger): Promise<void> {
  await redis.del(USAGE_EVENTS_STREAM);
  const users = Array.from({ length: 100 }, () => `bench-${randomUUID()}`);
  for (const user of users) await ledger.topUp(user, 100_000_000_000, randomUUID());
  for (let start = 0; start < EVENTS; start += 500) {
    const chunk = Array.from({ length: Math.min(500, EVENTS - start) }, (_, i) => users[(start + i) % users.length]);
    const held = await Promise.all(chunk.map((userId) => ledger.reserve({ reservationId: randomUUID(), userId, keyId: null, model: MODEL, promptTokens: 2000, maxCompletionTokens: 1000 })));
    const pipeline = redis.pipeline();
    held.forEach((h, i) => {
      const event: UsageEvent = {
        eventId: randomUUID(),
        reservationId: h.reservationId,
        userId: chunk[i],
        keyId: null,
        model: MODEL,
        modelVersion: '1',
        promptTokens: 1500,
        promptCacheHitTokens: 1000,
        promptCacheMissTokens: 500,
        completionTokens: 300 + i,
        finishReason: 'STOP',
        endedAt: Date.now(),
      };
      pipeline.xadd(USAGE_EVENTS_STREAM, '*', ...encodeUsageEvent(event));
    });
    await pipeline.exec();
  }
}

/** Events settled per second by one consumer reading `batchSize` at a time, from start to an empty backlog. */
async function settleAll(redis: Redis, batchSize: number): Promise<number> {
  const ledger = new Ledger(redis, OPTIONS);
  await prepare(redis, ledger);
  const consumer = new UsageStreamConsumer(redis, new UsageSettlement(redis, ledger, log), log, { batchSize, claimIdleMs: 600_000, streamRetentionMs: 3_600_000, blockMs: 50 });
  const started = process.hrtime.bigint();
  await consumer.start();
  for (;;) {
    const groups = (await redis.xinfo('GROUPS', USAGE_EVENTS_STREAM)) as unknown[][];
    const group = groups.map((g) => Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [g[2 * i], g[2 * i + 1]]))).find((g) => g.name === USAGE_CONSUMER_GROUP)!;
    if (Number(group.pending) === 0 && Number(group.lag) === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await consumer.stop();
  await redis.xgroup('DESTROY', USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP);
  return EVENTS / seconds;
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-bench-billing-'));
  const server = await startRedisServer(dir);
  const redis = connectRedis(server.url, log);
  try {
    await redis.hset(`billing:price:${MODEL}`, { currency: 'USD', inputCacheHit: 28_000, inputCacheMiss: 280_000, output: 420_000 });
    const pipelined: number[] = [];
    const single: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      pipelined.push(await settleAll(redis, 256));
      single.push(await settleAll(redis, 1));
    }
    const ratio = median(pipelined.map((p, i) => p / single[i]));
    const fmt = (xs: number[]) => `${median(xs).toFixed(0)} (${xs.map((x) => x.toFixed(0)).join(', ')})`;
    const body = [
      `${EVENTS} usage events per round (each with a reservation to release, 100 users), one consumer, ${ROUNDS} alternating rounds; billing and a private redis-server (appendonly yes, appendfsync everysec) on this machine (\`npx tsx bench/billing-settlement.ts\`).`,
      '',
      '| consumer | events/s, median (rounds) |',
      '| --- | ---: |',
      `| batches of 256: one pipeline of SETTLE scripts, one XACK | ${fmt(pipelined)} |`,
      `| one event at a time: XREADGROUP COUNT 1, SETTLE, XACK | ${fmt(single)} |`,
      '',
      `Pipelined vs one at a time: **${ratio.toFixed(1)}×** (median of per-round ratios). Target ≥ ${TARGET} events/s: **${median(pipelined) >= TARGET ? 'met' : 'not met'}** (${median(pipelined).toFixed(0)}/s). Several replicas share the stream through the consumer group, so throughput scales with replicas until Redis's single thread (which runs every script) is the limit.`,
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('billing-settlement', '9 Billing: settlement throughput', body);
  } finally {
    redis.disconnect();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
