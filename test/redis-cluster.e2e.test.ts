import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { createLogger } from '../lib/log';
import { connectRedis, redisUnavailable } from '../lib/redis';
import { BalanceStore } from '../subgraphs/billing/balance-store';
import { billingKeys } from '../subgraphs/billing/keys';
import { Ledger } from '../subgraphs/billing/ledger';
import { ReservationSweeper } from '../subgraphs/billing/reservation-sweeper';
import { RedisRateStore } from '../gateway/rate-limits/stores';
import { CHAT_PRICES, expectedCharge, newUser, pricedModel, usageEvent } from '../subgraphs/billing/testing/fixtures';
import { balancesOf, billingAcross, rateLimitAcross } from './support/failover-load';
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
  const victim = await cluster.masterOf(billingKeys.balance(newUser()));
  const { expected, failures } = await billingAcross(ledger, model, FREE, () => cluster.loseMaster(victim));
  const { actual, wanted } = await balancesOf(balances, expected);
  expect(actual).toEqual(wanted);
  // Whatever failed on the way failed as Redis being unavailable, which the services answer SERVICE_UNAVAILABLE.
  expect(failures.filter((error) => !redisUnavailable(error)).map((error) => error.message)).toEqual([]);
}, 120_000);

it('a planned failover (CLUSTER FAILOVER) mid-load: reads of many users on the master handed over all answer, none gets MOVED', async () => {
  const users = Array.from({ length: 200 }, newUser);
  const victim = await cluster.masterOf(billingKeys.balance(users[0]));
  const failures: string[] = [];
  let answered = 0;
  let stop = false;
  const readers = Array.from({ length: 40 }, async (_, reader) => {
    for (let i = reader; !stop; i++) {
      await balances.forUser(users[i % users.length]).then(
        () => answered++,
        (error: Error) => failures.push(error.message),
      );
    }
  });
  while (answered < 500) await new Promise((resolve) => setTimeout(resolve, 10));
  await cluster.handOver(victim);
  const after = answered;
  while (answered < after + 500) await new Promise((resolve) => setTimeout(resolve, 10));
  stop = true;
  await Promise.all(readers);
  expect(failures).toEqual([]);
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
  const { before, admitted, used } = await rateLimitAcross(store, key, LIMIT, () => cluster.loseMaster(victim));
  expect(before).toBeGreaterThan(0);
  expect(before).toBeLessThan(LIMIT); // the kill came mid-load, before the limit was reached
  expect(admitted).toBeGreaterThan(before); // and went on after the failover
  expect(admitted).toBeLessThanOrEqual(LIMIT);
  expect(used).toBeGreaterThanOrEqual(admitted);
}, 120_000);
