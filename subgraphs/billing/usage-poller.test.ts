import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { publishUsageEvent, USAGE_DEAD_LETTER_STREAM, USAGE_EVENTS_STREAM } from '../../lib/usage-events';
import { BalanceStore } from './balance-store';
import { Ledger } from './ledger';
import { UsageSettlement } from './settlement';
import { UsageStreamPoller } from './usage-poller';
import { CHAT_PRICES, eventually, expectedCharge, newUser, pricedModel, usageEvent } from './testing/fixtures';

const FREE = 5_000_000;
const log = createLogger({ test: 'usage-poller' });

/** The in-memory mode's stand-in for the consumer group, on ioredis-mock as `npm start` runs it without Redis. */
describe('usage poller (in-memory mode)', () => {
  let producer: Redis;
  let redis: Redis;

  beforeAll(() => {
    // Two connections share one in-process store, as inference and billing do in that mode.
    producer = connectRedis('memory://', log);
    redis = connectRedis('memory://', log);
  });

  afterAll(() => {
    producer.disconnect();
    redis.disconnect();
  });

  const poller = () =>
    new UsageStreamPoller(redis, new UsageSettlement(redis, new Ledger(redis, { freeCreditMicros: FREE, reservationTtlMs: 60_000, retentionMs: 3_600_000 }), log), log, {
      intervalMs: 5,
      batchSize: 7,
    });

  it('settles what the producer XADDs, once each, across a restart of the poller and a redelivery', async () => {
    const model = await pricedModel(redis, CHAT_PRICES);
    const user = newUser();
    const events = Array.from({ length: 20 }, (_, i) => usageEvent({ userId: user, model, completionTokens: 100 * i }));
    for (const event of events.slice(0, 10)) await publishUsageEvent(producer, event);
    const first = poller();
    await first.start();
    await eventually('the first ten to settle', async () => (await redis.get('billing:usage-events:cursor')) !== null && (await redis.xlen(USAGE_EVENTS_STREAM)) > 0 && (await first.pollOnce()) === 0);
    await first.stop();

    // Restarted: the cursor is kept in the store, so nothing is read twice; a redelivered event is still charged once.
    for (const event of [...events.slice(10), events[3]]) await publishUsageEvent(producer, event);
    const second = poller();
    await second.start();
    const balances = new BalanceStore(redis, FREE, 'USD');
    const expected = events.reduce((sum, e) => sum + expectedCharge(CHAT_PRICES, 0, 100, e.completionTokens), 0);
    await eventually('all twenty to settle', async () => (await balances.forUser(user)).total === FREE - expected);
    await second.stop();
    expect(await second.pollOnce()).toBe(0);
    expect((await balances.forUser(user)).total).toBe(FREE - expected);
  });

  it('dead-letters a malformed event and goes on', async () => {
    const model = await pricedModel(redis, CHAT_PRICES);
    const user = newUser();
    await producer.xadd(USAGE_EVENTS_STREAM, '*', 'v', '1', 'eventId', 'not-a-uuid');
    await publishUsageEvent(producer, usageEvent({ userId: user, model }));
    const p = poller();
    while ((await p.pollOnce()) > 0);
    expect((await new BalanceStore(redis, FREE, 'USD').forUser(user)).total).toBe(FREE - expectedCharge(CHAT_PRICES, 0, 100, 50));
    const dead = await redis.xrange(USAGE_DEAD_LETTER_STREAM, '-', '+');
    expect(dead.map(([, fields]) => fields[1])).toContain('usage event promptTokens expects a non-negative integer in decimal, but got null');
  });
});
