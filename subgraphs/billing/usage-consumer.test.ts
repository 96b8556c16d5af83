import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { encodeUsageEvent, publishUsageEvent, USAGE_DEAD_LETTER_STREAM, USAGE_EVENTS_STREAM } from '../../lib/usage-events';
import { startRedisServer } from '../../scripts/redis-server';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { BalanceStore } from './balance-store';
import { billingKeys } from './keys';
import { Ledger } from './ledger';
import { UsageSettlement } from './settlement';
import { ensureGroup, USAGE_CONSUMER_GROUP, UsageStreamConsumer } from './usage-consumer';
import { UsageReports } from './usage-reports';
import { CHAT_PRICES, eventually, expectedCharge, newUser, pricedModel, usageEvent } from './testing/fixtures';

const FREE = 5_000_000;
const OPTIONS = { freeCreditMicros: FREE, reservationTtlMs: 600_000, retentionMs: 3_600_000 };
const log = createLogger({ test: 'usage-consumer' });

function consumerOn(redis: Redis, claimIdleMs = 60_000): UsageStreamConsumer {
  return new UsageStreamConsumer(redis, new UsageSettlement(redis, new Ledger(redis, OPTIONS), log), log, { claimIdleMs, streamRetentionMs: 600_000, blockMs: 100 });
}

const requestsToday = async (redis: Redis, user: string) =>
  (await new UsageReports(redis, 'USD').usage(user, new Date(Date.now() - 86_400_000), new Date(Date.now() + 86_400_000), 'MODEL'))[0]?.requests ?? 0;

describe('usage consumer on Redis', () => {
  let testRedis: TestRedis;
  let redis: Redis;
  let model: string;

  beforeAll(async () => {
    testRedis = await startTestRedis();
    redis = testRedis.connect();
    model = await pricedModel(redis, CHAT_PRICES);
  });

  afterAll(() => testRedis.stop());

  it("settles exactly once what a killed consumer left pending, reclaimed by another replica's XAUTOCLAIM", async () => {
    const user = newUser();
    const ledger = new Ledger(redis, OPTIONS);
    const events = Array.from({ length: 40 }, (_, i) => usageEvent({ userId: user, model, promptCacheMissTokens: 100 + i, completionTokens: 10 * i }));
    for (const event of events) await publishUsageEvent(redis, event);
    await ensureGroup(redis);
    // The "killed" consumer: it read every entry, settled the first half, then died before acknowledging anything.
    const taken = (await redis.xreadgroup('GROUP', USAGE_CONSUMER_GROUP, 'killed-replica', 'COUNT', 1000, 'STREAMS', USAGE_EVENTS_STREAM, '>')) as [string, [string, string[]][]][];
    expect(taken[0][1].length).toBeGreaterThanOrEqual(40);
    await ledger.settleMany(events.slice(0, 20));

    const survivor = consumerOn(redis, 50);
    await new Promise((resolve) => setTimeout(resolve, 60)); // let the entries become idle past claimIdleMs
    await survivor.claimAbandoned();
    await survivor.stop();

    const expected = events.reduce((sum, e) => sum + expectedCharge(CHAT_PRICES, 0, e.promptCacheMissTokens, e.completionTokens), 0);
    expect((await new BalanceStore(redis, FREE, 'USD').forUser(user)).total).toBe(FREE - expected);
    expect(await requestsToday(redis, user)).toBe(40);
    const pending = (await redis.xpending(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP, '-', '+', 1000, 'killed-replica')) as unknown[];
    expect(pending).toEqual([]);
  });

  it('moves a malformed event to the dead-letter stream with the reason, acknowledges it, and goes on', async () => {
    const user = newUser();
    const consumer = consumerOn(redis);
    await consumer.start();
    const bad = encodeUsageEvent(usageEvent({ userId: user, model }));
    bad[bad.indexOf('completionTokens') + 1] = '-5';
    const badId = (await redis.xadd(USAGE_EVENTS_STREAM, '*', ...bad)) as string;
    await redis.xadd(USAGE_EVENTS_STREAM, '*', 'garbage', 'yes');
    const poisoned = newUser();
    await redis.set(billingKeys.balance(poisoned), 'not a hash'); // its script fails in Redis, every time
    await publishUsageEvent(redis, usageEvent({ userId: poisoned, model }));
    await publishUsageEvent(redis, usageEvent({ userId: user, model }));
    await eventually('the valid event after the bad ones to settle', async () => (await requestsToday(redis, user)) === 1);
    await consumer.stop();
    const dead = (await redis.xrange(USAGE_DEAD_LETTER_STREAM, '-', '+')).map(([, fields]) => fields);
    const mine = dead.find((fields) => fields[3] === badId);
    expect(mine?.slice(0, 2)).toEqual(['reason', 'usage event completionTokens expects a non-negative integer in decimal, but got "-5"']);
    expect(dead.some((fields) => fields[1] === 'usage event v expects "1", but got null')).toBe(true);
    expect(dead.some((fields) => fields[1].includes('cannot be settled: Redis refused its settlement: WRONGTYPE') && fields.includes(poisoned))).toBe(true);
    const [pendingCount] = (await redis.xpending(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP)) as [number];
    expect(Number(pendingCount)).toBe(0);
  });

  it('trims acknowledged history past the retention but never a pending entry', async () => {
    const consumer = consumerOn(redis);
    await ensureGroup(redis);
    const user = newUser();
    await publishUsageEvent(redis, usageEvent({ userId: user, model }));
    await redis.xreadgroup('GROUP', USAGE_CONSUMER_GROUP, 'slow-replica', 'COUNT', 1, 'STREAMS', USAGE_EVENTS_STREAM, '>');
    const [, oldest] = (await redis.xpending(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP)) as [number, string];
    await consumer.trim(Date.now() + 10 * 600_000); // everything is "old"
    const left = await redis.xrange(USAGE_EVENTS_STREAM, '-', '+');
    expect(left.some(([id]) => id === oldest)).toBe(true);
    await redis.xack(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP, oldest);
    await consumer.stop();
  });
});

it('loses nothing from the ledger across a Redis restart with append-only persistence', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-billing-aof-'));
  let server = await startRedisServer(dir);
  const connections: Redis[] = [];
  const connect = (url: string) => {
    const client = connectRedis(url, log);
    connections.push(client);
    return client;
  };
  try {
    let redis = connect(server.url);
    const model = await pricedModel(redis, CHAT_PRICES);
    const user = newUser();
    const ledger = new Ledger(redis, OPTIONS);
    const settledBefore = Array.from({ length: 30 }, () => usageEvent({ userId: user, model, completionTokens: 1000 }));
    const waiting = Array.from({ length: 30 }, () => usageEvent({ userId: user, model, completionTokens: 2000 }));
    const held = await ledger.reserve({ reservationId: randomUUID(), userId: user, keyId: null, model, promptTokens: 100, maxCompletionTokens: 5000 });
    await ledger.topUp(user, 1_000_000, 'aof-top-up');
    let consumer = consumerOn(redis);
    await consumer.start();
    for (const event of settledBefore) await publishUsageEvent(redis, event);
    await eventually('the first events to settle', async () => (await requestsToday(redis, user)) === 30);
    await consumer.stop();
    for (const event of waiting) await publishUsageEvent(redis, event); // published, not yet consumed
    const before = await new BalanceStore(redis, FREE, 'USD').forUser(user);

    await server.stop();
    server = await startRedisServer(dir);
    redis = connect(server.url);
    const balances = new BalanceStore(redis, FREE, 'USD');
    expect(await balances.forUser(user)).toEqual(before);
    expect(await requestsToday(redis, user)).toBe(30);

    consumer = consumerOn(redis);
    await consumer.start();
    for (const event of settledBefore.slice(0, 5)) await publishUsageEvent(redis, event); // redelivered after the restart
    await publishUsageEvent(redis, usageEvent({ userId: user, model, reservationId: held.reservationId, completionTokens: 0 }));
    await eventually('the waiting events and the reservation to settle', async () => (await requestsToday(redis, user)) === 61);
    await consumer.stop();
    expect(await new Ledger(redis, OPTIONS).topUp(user, 1_000_000, 'aof-top-up')).toBe(false);
    const expected = 30 * expectedCharge(CHAT_PRICES, 0, 100, 1000) + 30 * expectedCharge(CHAT_PRICES, 0, 100, 2000) + expectedCharge(CHAT_PRICES, 0, 100, 0);
    expect(await balances.forUser(user)).toMatchObject({ total: FREE + 1_000_000 - expected, reserved: 0 });
  } finally {
    connections.forEach((c) => c.disconnect());
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
