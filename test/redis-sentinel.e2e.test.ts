import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { RedisRateStore } from '../gateway/rate-limits/stores';
import { createLogger } from '../lib/log';
import { connectRedis, redisUnavailable } from '../lib/redis';
import { BalanceStore } from '../subgraphs/billing/balance-store';
import { Ledger } from '../subgraphs/billing/ledger';
import { CHAT_PRICES, newUser, pricedModel } from '../subgraphs/billing/testing/fixtures';
import { balancesOf, billingAcross, rateLimitAcross } from './support/failover-load';
import { startRedisSentinel, type RedisSentinel } from './support/redis-sentinel';

/**
 * The services' Sentinel mode (REDIS_SENTINELS, REDIS_SENTINEL_NAME) on real
 * processes: a master, its replica and three sentinels, with ACL users. Billing's money and
 * the gateway's rate limits go on across a planned failover and a killed
 * master, with nothing lost or doubled and no more admitted than the limit.
 */
const FREE = 5_000_000;

let sentinel: RedisSentinel;
let redis: Redis;
let ledger: Ledger;
let balances: BalanceStore;
let model: string;

beforeAll(async () => {
  sentinel = await startRedisSentinel();
  redis = connectThroughSentinels();
  ledger = new Ledger(redis, { freeCreditMicros: FREE, reservationTtlMs: 60_000, retentionMs: 3_600_000 });
  balances = new BalanceStore(redis, FREE, 'USD');
  model = await pricedModel(redis, CHAT_PRICES);
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await sentinel?.stop();
});

/** A client as a service started with REDIS_SENTINELS, REDIS_SENTINEL_NAME and `env` makes it. */
function connectThroughSentinels(env: Record<string, string> = {}): Redis {
  const variables = { REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name, ...env };
  Object.assign(process.env, variables);
  try {
    return connectRedis(sentinel.url, createLogger({ test: 'redis-sentinel' }));
  } finally {
    for (const name of Object.keys(variables)) delete process.env[name];
  }
}

it('a service reaches the master through the sentinels as its own ACL user (REDIS_USERNAME), with its own keys only', async () => {
  const billing = connectThroughSentinels({ REDIS_USERNAME: 'billing', REDIS_PASSWORD: sentinel.passwords.billing });
  try {
    const user = newUser();
    // A money script confirmed by the replica (WAIT 1) as the billing user.
    expect(await new Ledger(billing, { freeCreditMicros: FREE, reservationTtlMs: 60_000, retentionMs: 3_600_000 }).topUp(user, 1_000, randomUUID())).toBe(true);
    expect((await new BalanceStore(billing, FREE, 'USD').forUser(user)).total).toBe(FREE + 1_000);
    await expect(billing.get(`gw:rl:{user:${user}}:rpm`)).rejects.toThrow(/NOPERM/);
  } finally {
    await billing.quit();
  }
});

/** The port of the server the client is connected to, as that server reports it. */
async function connectedPort(): Promise<number> {
  return Number(/tcp_port:(\d+)/.exec(await redis.info('server'))?.[1]);
}

it('connects to the master the sentinels name, and follows a planned failover: billing loses and doubles nothing', async () => {
  const first = await sentinel.master();
  expect(await connectedPort()).toBe(first.port);
  const { expected, failures } = await billingAcross(ledger, model, FREE, () => sentinel.failover());
  const { actual, wanted } = await balancesOf(balances, expected);
  expect(actual).toEqual(wanted);
  expect(failures.filter((error) => !redisUnavailable(error)).map((error) => error.message)).toEqual([]);
  const second = await sentinel.master();
  expect(second).not.toBe(first);
  expect(await connectedPort()).toBe(second.port);
}, 180_000);

it('a master killed mid-load: the replica takes over and every balance is grants − settled charges exactly', async () => {
  const first = await sentinel.master();
  const { expected, failures } = await billingAcross(ledger, model, FREE, () => sentinel.loseMaster());
  const { actual, wanted } = await balancesOf(balances, expected);
  expect(actual).toEqual(wanted);
  expect(failures.filter((error) => !redisUnavailable(error)).map((error) => error.message)).toEqual([]);
  expect(await sentinel.master()).not.toBe(first);
}, 180_000);

it('rate limits: a master killed mid-load admits no more than the limit', async () => {
  const LIMIT = 300;
  const key = `gw:rl:{user:${randomUUID()}}:rpm`;
  const { before, admitted, used } = await rateLimitAcross(new RedisRateStore(redis), key, LIMIT, () => sentinel.loseMaster());
  expect(before).toBeLessThan(LIMIT); // the kill came mid-load, before the limit was reached
  expect(admitted).toBeGreaterThan(before); // and went on after the failover
  expect(admitted).toBeLessThanOrEqual(LIMIT);
  expect(used).toBeGreaterThanOrEqual(admitted);
}, 180_000);
