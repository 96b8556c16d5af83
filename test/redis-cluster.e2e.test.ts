import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { createLogger } from '../lib/log';
import { connectRedis } from '../lib/redis';
import { BalanceStore } from '../subgraphs/billing/balance-store';
import { billingKeys } from '../subgraphs/billing/keys';
import { Ledger } from '../subgraphs/billing/ledger';
import { ReservationSweeper } from '../subgraphs/billing/reservation-sweeper';
import { RedisRateStore } from '../gateway/rate-limits/stores';
import { CHAT_PRICES, expectedCharge, newUser, pricedModel, usageEvent } from '../subgraphs/billing/testing/fixtures';
import { startRedisCluster, type RedisCluster } from './support/redis-cluster';

const FREE = 5_000_000;
const TTL = 60_000;

let cluster: RedisCluster;
let redis: Redis;
let ledger: Ledger;
let balances: BalanceStore;
let model: string;

beforeAll(async () => {
  cluster = await startRedisCluster();
  process.env.REDIS_CLUSTER_NODES = cluster.nodeList;
  try {
    redis = connectRedis(cluster.url, createLogger({ test: 'redis-cluster' }));
  } finally {
    delete process.env.REDIS_CLUSTER_NODES;
  }
  ledger = new Ledger(redis, { freeCreditMicros: FREE, reservationTtlMs: TTL, retentionMs: 3_600_000 });
  balances = new BalanceStore(redis, FREE, 'USD');
  model = await pricedModel(redis, CHAT_PRICES);
}, 60_000);

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

/** Retries an idempotent step until the cluster answers (a failover refuses or loses commands for a few seconds). */
async function retried<T>(step: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if ((error as { extensions?: unknown }).extensions || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

it('billing: every money script runs on a Cluster (one slot per user): reserve, settle, top up, expire', async () => {
  const user = newUser();
  const held = await ledger.reserve({ reservationId: randomUUID(), userId: user, keyId: 'k1', model, promptTokens: 1000, maxCompletionTokens: 1000 });
  const event = usageEvent({ userId: user, keyId: 'k1', model, reservationId: held.reservationId, promptCacheMissTokens: 400, completionTokens: 77 });
  expect(await ledger.settleMany([event, usageEvent({ userId: newUser(), model })])).toMatchObject([{ status: 'settled' }, { status: 'settled' }]);
  expect(await ledger.settle(event)).toEqual({ status: 'duplicate' });
  expect(await ledger.topUp(user, 1_000_000, randomUUID())).toBe(true);
  const now = Date.now();
  await ledger.reserve({ reservationId: randomUUID(), userId: user, keyId: null, model, promptTokens: 10, maxCompletionTokens: 10 }, now);
  expect(await new ReservationSweeper(ledger, createLogger(), 1_000).sweep(now + TTL)).toBe(1);
  expect(await balances.forUser(user)).toMatchObject({ total: FREE + 1_000_000 - expectedCharge(CHAT_PRICES, 0, 400, 77), reserved: 0 });
  expect(await redis.zscore(billingKeys.reservationUsers, user)).toBeNull();
});

it('billing: a master killed mid-load loses and doubles nothing: every balance is grants − settled charges exactly', async () => {
  const users = Array.from({ length: 12 }, newUser);
  const victim = await cluster.masterOf(billingKeys.balance(users[0]));
  const charges = new Map<string, number>(users.map((user) => [user, 0]));
  const topUps = new Map<string, number>(users.map((user) => [user, 0]));
  let stop = false;
  const load = users.map(async (userId, u) => {
    for (let i = 0; !stop || i < 5; i++) {
      const reservationId = randomUUID();
      const held = await retried(() => ledger.reserve({ reservationId, userId, keyId: u % 2 ? 'k' : null, model, promptTokens: 100, maxCompletionTokens: 100 }));
      const event = usageEvent({ userId, keyId: u % 2 ? 'k' : null, model, reservationId: held.reservationId, promptCacheHitTokens: i, promptCacheMissTokens: 50, completionTokens: 10 + i });
      // Settling again after a failure is what the usage consumer does (the event stays pending): once, however often.
      const outcome = await retried(async () => {
        const result = await ledger.settle(event);
        if (result.status === 'refused') throw new Error(`refused: ${result.reason}`);
        return result;
      });
      // Counted from the event, not from the answer: a retry after a lost answer finds it settled (duplicate), and must be.
      expect(outcome.status === 'settled' || outcome.status === 'duplicate').toBe(true);
      charges.set(userId, charges.get(userId)! + expectedCharge(CHAT_PRICES, i, 50, 10 + i));
      if (i % 4 === 0) {
        const key = randomUUID();
        await retried(() => ledger.topUp(userId, 1_000, key));
        topUps.set(userId, topUps.get(userId)! + 1_000);
      }
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  await cluster.loseMaster(victim);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  stop = true;
  await Promise.all(load);
  for (const user of users) {
    const balance = await balances.forUser(user);
    expect({ user, total: balance.total, reserved: balance.reserved }).toEqual({ user, total: FREE + topUps.get(user)! - charges.get(user)!, reserved: 0 });
  }
}, 120_000);

it('rate limits: windows of different slots are all or none, and a master killed mid-load admits no more than the limit', async () => {
  const store = new RedisRateStore(redis);
  const caller = `gw:rl:{user:${randomUUID()}}:rpm`;
  const ip = `gw:rl:{ip:${randomUUID()}}:ip-rpm`;
  expect(
    (
      await store.charge([
        { key: caller, limit: 10, cost: 1 },
        { key: ip, limit: 1, cost: 1 },
      ])
    ).admitted,
  ).toBe(true);
  expect(
    (
      await store.charge([
        { key: caller, limit: 10, cost: 1 },
        { key: ip, limit: 1, cost: 1 },
      ])
    ).admitted,
  ).toBe(false);
  expect((await store.charge([{ key: caller, limit: 10, cost: 0 }])).windows[0].used).toBe(1); // the refused decision was refunded

  const LIMIT = 300;
  const key = `gw:rl:{user:${randomUUID()}}:rpm`;
  const victim = await cluster.masterOf(key);
  let admitted = 0;
  let stop = false;
  const clients = Array.from({ length: 8 }, async () => {
    while (!stop) {
      try {
        if ((await store.charge([{ key, limit: LIMIT, cost: 1 }])).admitted) admitted++;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50)); // the gateway's own fallback is not under test here
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  while (admitted < LIMIT / 3) await new Promise((resolve) => setTimeout(resolve, 5));
  const before = admitted;
  await cluster.loseMaster(victim);
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  stop = true;
  await Promise.all(clients);
  expect(before).toBeGreaterThan(0);
  expect(before).toBeLessThan(LIMIT); // the kill came mid-load, before the limit was reached
  expect(admitted).toBeGreaterThan(before); // and went on after the failover
  expect(admitted).toBeLessThanOrEqual(LIMIT);
  expect((await store.charge([{ key, limit: LIMIT, cost: 0 }])).windows[0].used).toBeGreaterThanOrEqual(admitted);
}, 120_000);
