import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { GraphQLError } from 'graphql';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { BalanceStore } from './balance-store';
import { billingKeys, utcDay, utcMonth } from './keys';
import { Ledger } from './ledger';
import { ReservationSweeper } from './reservation-sweeper';
import { SpendLimits } from './spend-limits';
import { UsageReports } from './usage-reports';
import { CHAT_PRICES, expectedCharge, newUser, pricedModel, usageEvent } from './testing/fixtures';

const FREE = 5_000_000;
const TTL = 60_000;

/** The scripts run on Redis (Lua 5.1) and on ioredis-mock (fengari, 32-bit integers): both must agree to the micro. */
describe.each([['Redis'], ['ioredis-mock']])('ledger on %s', (backend) => {
  let testRedis: TestRedis | undefined;
  let redis: Redis;
  let ledger: Ledger;
  let balances: BalanceStore;
  let model: string;

  beforeAll(async () => {
    if (backend === 'Redis') {
      testRedis = await startTestRedis();
      redis = testRedis.connect();
    } else {
      redis = connectRedis('memory://', createLogger());
    }
    ledger = new Ledger(redis, { freeCreditMicros: FREE, reservationTtlMs: TTL, retentionMs: 3_600_000 });
    balances = new BalanceStore(redis, FREE, 'USD');
    model = await pricedModel(redis, CHAT_PRICES);
  });

  afterAll(async () => {
    if (testRedis) await testRedis.stop();
    else redis.disconnect();
  });

  const reserve = (userId: string, overrides: Partial<Parameters<Ledger['reserve']>[0]> = {}, now?: number) =>
    ledger.reserve({ reservationId: randomUUID(), userId, keyId: null, model, promptTokens: 1000, maxCompletionTokens: 1000, ...overrides }, now);

  async function refusal(promise: Promise<unknown>): Promise<GraphQLError> {
    const error = await promise.then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GraphQLError);
    return error as GraphQLError;
  }

  it('holds the maximum cost, then settles the real usage and releases the rest', async () => {
    const user = newUser();
    const held = await reserve(user);
    const max = expectedCharge(CHAT_PRICES, 0, 1000, 1000);
    expect(held).toMatchObject({ amountMicros: max, state: 'held' });
    expect(await balances.forUser(user)).toMatchObject({ total: FREE, reserved: max, available: FREE - max });

    const event = usageEvent({ userId: user, model, reservationId: held.reservationId, promptCacheHitTokens: 300, promptCacheMissTokens: 400, completionTokens: 77 });
    const charge = expectedCharge(CHAT_PRICES, 300, 400, 77);
    expect(await ledger.settle(event)).toEqual({ status: 'settled', charge, charged: charge, shortfall: 0, reservation: 'held' });
    expect(await balances.forUser(user)).toMatchObject({ total: FREE - charge, granted: FREE - charge, toppedUp: 0, reserved: 0, available: FREE - charge });
    expect(await ledger.settle(event)).toEqual({ status: 'duplicate' });
    expect((await balances.forUser(user)).total).toBe(FREE - charge);
  });

  it('computes charges exactly at the largest tokens and prices it accepts, rounding each event up to the micro', async () => {
    const user = newUser();
    const costly = { inputCacheHit: 200_000_000, inputCacheMiss: 199_999_999, output: 199_999_997 };
    const big = await pricedModel(redis, costly);
    await ledger.topUp(user, 900_000_000_000_000, randomUUID());
    const event = usageEvent({ userId: user, model: big, promptCacheHitTokens: 10_000_000, promptCacheMissTokens: 9_999_999, completionTokens: 9_999_997 });
    const charge = expectedCharge(costly, 10_000_000, 9_999_999, 9_999_997);
    expect(charge).toBe(5_999_999_161); // 5,999,999,160,000,010 / 10^6 rounded up; the sum is near 2^53, the result above 2^32
    expect(await ledger.settle(event)).toMatchObject({ status: 'settled', charge, charged: charge });
    const tiny = usageEvent({ userId: user, model, promptCacheHitTokens: 0, promptCacheMissTokens: 1, completionTokens: 0 });
    expect(await ledger.settle(tiny)).toMatchObject({ charge: 1 }); // 0.28 micros → 1
    expect((await balances.forUser(user)).total).toBe(FREE + 900_000_000_000_000 - charge - 1);
  });

  it('spends granted credit first, then topped-up credit', async () => {
    const user = newUser();
    await ledger.topUp(user, 1_000_000, randomUUID());
    const event = usageEvent({ userId: user, model, promptCacheMissTokens: 20_000_000 / 2, completionTokens: 0 }); // 2,800,000 micros
    await ledger.settle(event);
    await ledger.settle(usageEvent({ userId: user, model, promptCacheMissTokens: 10_000_000, completionTokens: 0 }));
    expect(await balances.forUser(user)).toMatchObject({ granted: 0, toppedUp: 400_000, total: 400_000 });
  });

  it('refuses a reservation the balance cannot cover, saying what was needed and what is available', async () => {
    const user = newUser();
    const error = await refusal(reserve(user, { promptTokens: 10_000_000, maxCompletionTokens: 10_000_000 }));
    expect(error.extensions).toEqual({ code: 'INSUFFICIENT_BALANCE', needed: 7_000_000, available: FREE });
    expect(error.message).toBe('insufficient balance: this request may cost up to 7000000 micros, but 5000000 micros are available; top up or lower maxTokens');
    expect((await balances.forUser(user)).reserved).toBe(0);
  });

  it('is idempotent by reservation id, and refuses the same id for a different request', async () => {
    const user = newUser();
    const first = await reserve(user);
    expect(await reserve(user, { reservationId: first.reservationId })).toEqual(first);
    expect((await balances.forUser(user)).reserved).toBe(first.amountMicros);
    expect((await refusal(reserve(user, { reservationId: first.reservationId, maxCompletionTokens: 5 }))).extensions.code).toBe('CONFLICT');
    // Reservation ids are the user's own: another user's reservation with the same id holds their money, not this one's.
    const other = newUser();
    expect(await reserve(other, { reservationId: first.reservationId })).toMatchObject({ state: 'held', amountMicros: first.amountMicros });
    expect((await balances.forUser(user)).reserved).toBe(first.amountMicros);
  });

  it('refuses a model without a price, before and after', async () => {
    const user = newUser();
    const error = await refusal(reserve(user, { model: 'no-such-model' }));
    expect(error.extensions).toEqual({ code: 'MODEL_NOT_PRICED', model: 'no-such-model' });
    expect(await ledger.settle(usageEvent({ userId: user, model: 'no-such-model' }))).toEqual({ status: 'refused', reason: 'the model has no price configured' });
  });

  it("caps a key's spend per day counting live reservations and settled spend, naming the period and cap", async () => {
    const user = newUser();
    const keyId = `k-${randomUUID()}`;
    const max = expectedCharge(CHAT_PRICES, 0, 1000, 1000); // 700 micros
    await new SpendLimits(redis).set(user, keyId, 2 * max, null);
    const a = await reserve(user, { keyId });
    await reserve(user, { keyId });
    const error = await refusal(reserve(user, { keyId }));
    expect(error.extensions).toMatchObject({ code: 'SPEND_LIMIT_EXCEEDED', period: 'DAY', cap: 2 * max, spent: 0, reserved: 2 * max, needed: max, apiKeyId: keyId });
    await reserve(user); // a session is not capped
    await ledger.settle(usageEvent({ userId: user, keyId, model, reservationId: a.reservationId, promptCacheMissTokens: 1000, completionTokens: 0 }));
    // 280 settled + 700 held + 700 asked > 1400
    expect((await refusal(reserve(user, { keyId }))).extensions).toMatchObject({ spent: 280, reserved: max });
    expect(await new SpendLimits(redis).list(user)).toEqual([{ apiKeyId: keyId, daily: 2 * max, monthly: null, spentToday: 280, spentThisMonth: 280, reserved: max }]);
  });

  it('releases expired reservations once, and still charges a late event without going below zero', async () => {
    const user = newUser();
    const now = Date.now();
    const held = await reserve(user, { promptTokens: 10_000_000, maxCompletionTokens: 0 }, now); // 2,800,000
    const sweeper = new ReservationSweeper(ledger, createLogger(), 1_000);
    await sweeper.sweep(now + TTL - 1);
    expect((await balances.forUser(user)).reserved).toBe(2_800_000);
    await Promise.all([sweeper.sweep(now + TTL), new ReservationSweeper(ledger, createLogger(), 1_000).sweep(now + TTL)]); // two replicas at once
    expect((await balances.forUser(user)).reserved).toBe(0);
    expect(await redis.hget(billingKeys.reservation(user, held.reservationId), 'state')).toBe('expired');
    await sweeper.sweep(now + TTL); // released once: a later sweep finds nothing held
    expect((await balances.forUser(user)).reserved).toBe(0);
    // Meanwhile other requests spent most of the balance.
    await ledger.settle(usageEvent({ userId: user, model, promptCacheMissTokens: 10_000_000, completionTokens: 0 }));
    const late = usageEvent({ userId: user, model, reservationId: held.reservationId, promptCacheMissTokens: 10_000_000, completionTokens: 0 });
    expect(await ledger.settle(late, now + TTL + 1)).toEqual({ status: 'settled', charge: 2_800_000, charged: 2_200_000, shortfall: 600_000, reservation: 'expired' });
    expect(await balances.forUser(user)).toMatchObject({ total: 0, granted: 0, toppedUp: 0 });
    const day = await redis.hgetall(billingKeys.usageDay(user, utcDay(late.endedAt)));
    expect(day[`${model}|amount`]).toBe('5000000');
    expect(day[`${model}|shortfall`]).toBe('600000');
  });

  it('dead-letters an event that does not match its reservation, or a second event for a settled reservation', async () => {
    const user = newUser();
    const held = await reserve(user);
    expect(await ledger.settle(usageEvent({ userId: user, keyId: 'k-other', model, reservationId: held.reservationId }))).toEqual({
      status: 'refused',
      reason: "the event's keyId differs from its reservation's",
    });
    const first = usageEvent({ userId: user, model, reservationId: held.reservationId });
    await ledger.settle(first);
    expect(await ledger.settle(usageEvent({ userId: user, model, reservationId: held.reservationId }))).toEqual({
      status: 'refused',
      reason: `its reservation was already settled by event ${first.eventId}`,
    });
  });

  it('credits a top-up once per idempotency key, and refuses the key for another user or amount', async () => {
    const user = newUser();
    const key = randomUUID();
    expect(await ledger.topUp(user, 2_000_000, key)).toBe(true);
    expect(await ledger.topUp(user, 2_000_000, key)).toBe(false);
    expect(await balances.forUser(user)).toMatchObject({ granted: FREE, toppedUp: 2_000_000, total: FREE + 2_000_000 });
    const conflict = await refusal(ledger.topUp(user, 3_000_000, key));
    expect(conflict.extensions.code).toBe('CONFLICT');
    expect(conflict.message).toContain(`expected the same user and amount, but got user ${JSON.stringify(user)} and 3000000 micros`);
    expect((await refusal(ledger.topUp(newUser(), 2_000_000, key))).extensions.code).toBe('CONFLICT');
    expect((await refusal(ledger.topUp(user, 0, randomUUID()))).extensions.code).toBe('BAD_USER_INPUT');
  });

  it('reports usage by day and by model, and invoices whose lines add up, from the same integers', async () => {
    const user = newUser();
    const other = await pricedModel(redis, { inputCacheHit: 1, inputCacheMiss: 2, output: 3 });
    const day1 = Date.UTC(2026, 9, 31, 23, 0);
    const day2 = Date.UTC(2026, 10, 1, 1, 0);
    const events = [
      usageEvent({ userId: user, model, endedAt: day1, promptCacheHitTokens: 10, promptCacheMissTokens: 20, completionTokens: 30 }),
      usageEvent({ userId: user, model, endedAt: day2, promptCacheHitTokens: 1, promptCacheMissTokens: 2, completionTokens: 3 }),
      usageEvent({ userId: user, model: other, endedAt: day2, promptCacheHitTokens: 1_000_000, promptCacheMissTokens: 0, completionTokens: 1_000_000 }),
    ];
    const charges = [expectedCharge(CHAT_PRICES, 10, 20, 30), expectedCharge(CHAT_PRICES, 1, 2, 3), 4];
    for (const event of events) await ledger.settle(event);
    const reports = new UsageReports(redis, 'USD');
    const byDay = await reports.usage(user, new Date(day1), new Date(day2 + 1), 'DAY');
    expect(byDay).toEqual([
      { key: '2026-10-31', requests: 1, promptTokens: 30, promptCacheHitTokens: 10, promptCacheMissTokens: 20, completionTokens: 30, amount: charges[0] },
      { key: '2026-11-01', requests: 2, promptTokens: 1_000_003, promptCacheHitTokens: 1_000_001, promptCacheMissTokens: 2, completionTokens: 1_000_003, amount: charges[1] + charges[2] },
    ]);
    const byModel = await reports.usage(user, new Date(day1), new Date(day2 + 1), 'MODEL');
    expect(byModel.map((b) => [b.key, b.requests, b.amount])).toEqual(
      [
        [model, 2, charges[0] + charges[1]],
        [other, 1, 4],
      ].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
    );
    const invoices = await reports.invoices(user, 12);
    expect(invoices.map((i) => [i.month, i.total, i.lines.length])).toEqual([
      ['2026-11', charges[1] + 4, 2],
      ['2026-10', charges[0], 1],
    ]);
    for (const invoice of invoices) expect(invoice.lines.reduce((s, l) => s + l.amount, 0)).toBe(invoice.total);
    expect(utcMonth(day2)).toBe('2026-11');
    expect(FREE - (await balances.forUser(user)).total).toBe(charges.reduce((a, b) => a + b));
  });

  it('validates the usage range', async () => {
    const reports = new UsageReports(redis, 'USD');
    const at = Date.UTC(2026, 0, 1);
    await expect(reports.usage('u', new Date(at), new Date(at), 'DAY')).rejects.toThrow('usage expects "from" before "to", but got from 2026-01-01T00:00:00.000Z and to 2026-01-01T00:00:00.000Z');
    await expect(reports.usage('u', new Date(at), new Date(at + 367 * 86_400_000), 'DAY')).rejects.toThrow('usage expects a range of at most 366 days, but got 367');
    expect(await reports.usage('u', new Date(at), new Date(at + 366 * 86_400_000), 'DAY')).toEqual([]);
  });
});
