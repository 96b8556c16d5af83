import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { GraphQLError } from 'graphql';
import { createLogger } from '../../lib/log';
import { publishUsageEvent, USAGE_EVENTS_STREAM } from '../../lib/usage-events';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { BalanceStore } from './balance-store';
import { Ledger, type Reservation } from './ledger';
import { UsageSettlement } from './settlement';
import { SpendLimits } from './spend-limits';
import { USAGE_CONSUMER_GROUP, UsageStreamConsumer } from './usage-consumer';
import { UsageReports } from './usage-reports';
import { CHAT_PRICES, eventually, expectedCharge, newUser, pricedModel, usageEvent } from './testing/fixtures';

const FREE = 5_000_000;
const OPTIONS = { freeCreditMicros: FREE, reservationTtlMs: 600_000, retentionMs: 3_600_000 };
const log = createLogger({ test: 'exactness' });

let testRedis: TestRedis;
let clients: Redis[];
let model: string;

beforeAll(async () => {
  testRedis = await startTestRedis();
  clients = [1, 2, 3, 4].map(() => testRedis.connect());
  model = await pricedModel(clients[0], CHAT_PRICES);
});

afterAll(() => testRedis.stop());

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

it('1,000 concurrent completions against a balance that allows only some: never below zero, charged once or refused, to the micro', async () => {
  const user = newUser();
  const next = random(9);
  const ledgers = clients.map((c) => new Ledger(c, OPTIONS));
  const consumers = clients.slice(0, 2).map((c, i) => new UsageStreamConsumer(c, new UsageSettlement(c, ledgers[i], log), log, { claimIdleMs: 60_000, streamRetentionMs: 600_000, blockMs: 100 }));
  for (const consumer of consumers) await consumer.start();
  const balances = new BalanceStore(clients[0], FREE, 'USD');
  const lowest = { total: FREE, available: FREE };
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const b = await balances.forUser(user);
      lowest.total = Math.min(lowest.total, b.total, b.granted, b.toppedUp);
      lowest.available = Math.min(lowest.available, b.available);
    }
  })();

  const expected: number[] = [];
  let refused = 0;
  const requests = Array.from({ length: 1000 }, async (_, i) => {
    const promptTokens = 2_000 + Math.floor(next() * 40_000);
    const maxCompletionTokens = 1_000 + Math.floor(next() * 80_000);
    const hit = Math.floor(next() * promptTokens);
    const out = Math.floor(next() * (maxCompletionTokens + 1));
    const ledger = ledgers[i % ledgers.length];
    let held: Reservation;
    try {
      held = await ledger.reserve({ reservationId: randomUUID(), userId: user, keyId: null, model, promptTokens, maxCompletionTokens });
    } catch (error) {
      expect((error as GraphQLError).extensions.code).toBe('INSUFFICIENT_BALANCE');
      refused++;
      return;
    }
    expect(held.amountMicros).toBe(expectedCharge(CHAT_PRICES, 0, promptTokens, maxCompletionTokens));
    expected.push(expectedCharge(CHAT_PRICES, hit, promptTokens - hit, out));
    const event = usageEvent({ userId: user, model, reservationId: held.reservationId, promptCacheHitTokens: hit, promptCacheMissTokens: promptTokens - hit, completionTokens: out });
    await publishUsageEvent(clients[i % clients.length], event);
    if (i % 10 === 0) await publishUsageEvent(clients[(i + 1) % clients.length], event); // a producer retry: delivered twice
  });
  await Promise.all(requests);

  const reports = new UsageReports(clients[0], 'USD');
  const today = () => reports.usage(user, new Date(Date.now() - 86_400_000), new Date(Date.now() + 86_400_000), 'MODEL');
  await eventually('every reserved completion to settle', async () => ((await today())[0]?.requests ?? 0) === expected.length);
  await eventually('the group to have nothing pending', async () => Number(((await clients[0].xpending(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP)) as [number])[0]) === 0);
  watching = false;
  await watcher;
  for (const consumer of consumers) await consumer.stop();

  const final = await balances.forUser(user);
  const charged = expected.reduce((a, b) => a + b, 0);
  expect(refused).toBeGreaterThan(100); // the balance really did run short
  expect(expected.length).toBeGreaterThan(100);
  expect(expected.length + refused).toBe(1000);
  expect(lowest.total).toBeGreaterThanOrEqual(0);
  expect(lowest.available).toBeGreaterThanOrEqual(0);
  expect(final).toMatchObject({ reserved: 0, total: FREE - charged });
  const [bucket] = await today();
  expect(bucket).toMatchObject({ requests: expected.length, amount: charged });
  const [invoice] = await reports.invoices(user, 1);
  expect(invoice.total).toBe(charged);
});

it('20 concurrent requests on one key with a small daily cap never spend past it', async () => {
  const user = newUser();
  const keyId = `k-${randomUUID()}`;
  const max = expectedCharge(CHAT_PRICES, 0, 1000, 1000); // 700
  const cap = 5 * max + 300;
  await new SpendLimits(clients[0]).set(user, keyId, cap, 100 * max);
  const ledgers = clients.map((c) => new Ledger(c, OPTIONS));
  const outcomes = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      ledgers[i % ledgers.length].reserve({ reservationId: randomUUID(), userId: user, keyId, model, promptTokens: 1000, maxCompletionTokens: 1000 }).then(
        (held) => held,
        (error: GraphQLError) => error,
      ),
    ),
  );
  const held = outcomes.filter((o): o is Reservation => !(o instanceof GraphQLError));
  const refusals = outcomes.filter((o): o is GraphQLError => o instanceof GraphQLError);
  expect(held).toHaveLength(5);
  for (const error of refusals) expect(error.extensions).toMatchObject({ code: 'SPEND_LIMIT_EXCEEDED', period: 'DAY', cap });
  // Each settles at its full cost: spend reaches 3,500 of the 3,800 cap, and no more fits.
  for (const h of held) await ledgers[0].settle(usageEvent({ userId: user, keyId, model, reservationId: h.reservationId, promptCacheMissTokens: 1000, completionTokens: 1000 }));
  const [limit] = await new SpendLimits(clients[0]).list(user);
  expect(limit).toMatchObject({ spentToday: 5 * max, reserved: 0 });
  expect(limit.spentToday).toBeLessThanOrEqual(cap);
  await expect(ledgers[0].reserve({ reservationId: randomUUID(), userId: user, keyId, model, promptTokens: 1000, maxCompletionTokens: 1000 })).rejects.toThrow(
    "would pass the key's daily spend limit of 3800 micros (3500 spent, 0 held by live requests)",
  );
});
