import type Redis from 'ioredis';
import type { Reservation } from '../../lib/billing-client';
import { codedError, ErrorCode } from '../../lib/errors';
import { redisUnavailable, retryDuringFailover, runReplicated } from '../../lib/redis';
import { ID_PATTERN, MAX_TOKENS_PER_EVENT, UUID_PATTERN, type UsageEvent } from '../../lib/usage-events';
import { billingKeys as K, utcDay, utcMonth } from './keys';
import { CLAIM_TOP_UP, INDEX_USER, REINDEX_USER, RELEASE_EXPIRED, RESERVE, SETTLE, TOP_UP } from './ledger-lua';

/** Largest balance (granted + topped up) an account may reach: 10^9 units, far inside 2^53 for every sum. */
export const MAX_BALANCE_MICROS = 1_000_000_000_000_000;

const DAY_MS = 86_400_000;
/** Key spend counters outlive their period by a margin, so a late event still lands on its own day or month. */
const KEY_DAY_SPEND_TTL_MS = 2 * DAY_MS;
const KEY_MONTH_SPEND_TTL_MS = 40 * DAY_MS;

export interface LedgerOptions {
  /** Credit a new account is opened with (the granted part). */
  freeCreditMicros: number;
  /** How long a reservation holds money before the sweeper may release it. */
  reservationTtlMs: number;
  /** How long settled markers and finished reservations are kept, for idempotency. */
  retentionMs: number;
}

export interface ReservationRequest {
  /** A UUID the caller makes; reserving twice with the same id and request holds once. */
  reservationId: string;
  userId: string;
  /** The API key the request came with, or null for a session. */
  keyId: string | null;
  model: string;
  /** An upper estimate of the prompt's tokens, all priced as cache misses. */
  promptTokens: number;
  maxCompletionTokens: number;
}

/** The route's answer (lib/billing-client.ts): `state` is `held` for a new reservation; a repeated request reports the state it is in now. */
export type { Reservation };

export type SettleOutcome =
  | { status: 'settled'; charge: number; charged: number; shortfall: number; reservation: 'none' | 'missing' | 'held' | 'expired' }
  | { status: 'duplicate' }
  /** Cannot be settled as it is: goes to the dead-letter stream with `reason`. */
  | { status: 'refused'; reason: string };

type ScriptFn = (...args: (string | number)[]) => Promise<unknown>;

/** Reserved reservation ids and expiries a sweep pass looks at per user. */
const RELEASE_BATCH = 500;

/**
 * Every money change of billing, each one Lua script over one user's keys
 * (see ledger-lua.ts): reserve, settle, release an expired reservation, top
 * up. What is shared by all users (prices, the sweeper's index of users, top-up
 * idempotency keys) is read or written in steps of its own, ordered so that a
 * crash between steps loses and doubles nothing (README.md, "Redis Cluster").
 */
export class Ledger {
  constructor(
    private readonly redis: Redis,
    private readonly options: LedgerOptions,
  ) {
    redis.defineCommand('billingReserve', { numberOfKeys: 7, lua: RESERVE });
    redis.defineCommand('billingSettle', { numberOfKeys: 10, lua: SETTLE });
    redis.defineCommand('billingReleaseExpired', { numberOfKeys: 4, lua: RELEASE_EXPIRED });
    redis.defineCommand('billingIndexUser', { numberOfKeys: 2, lua: INDEX_USER });
    redis.defineCommand('billingReindexUser', { numberOfKeys: 2, lua: REINDEX_USER });
    redis.defineCommand('billingClaimTopUp', { numberOfKeys: 1, lua: CLAIM_TOP_UP });
    redis.defineCommand('billingTopUp', { numberOfKeys: 2, lua: TOP_UP });
  }

  /** Holds the request's maximum cost, or throws INSUFFICIENT_BALANCE, SPEND_LIMIT_EXCEEDED, MODEL_NOT_PRICED, CONFLICT or BAD_USER_INPUT. */
  async reserve(request: ReservationRequest, now = Date.now()): Promise<Reservation> {
    validateReservation(request);
    const { reservationId, userId, model } = request;
    const keyId = request.keyId ?? '';
    const [, missPrice, outPrice] = await this.prices(model);
    // The user is indexed for the sweeper before the hold (a crash after the hold
    // cannot leave it unswept) and again after it (a sweep that looked at the user
    // in between does not forget them): see REINDEX_USER.
    const expiresAt = now + this.options.reservationTtlMs;
    await this.indexUser(userId, expiresAt);
    const reply = (await this.script('billingReserve')(
      K.reservation(userId, reservationId),
      K.balance(userId),
      K.expiringReservations(userId),
      K.keyLimit(userId, keyId),
      K.keySpendDay(userId, keyId, utcDay(now)),
      K.keySpendMonth(userId, keyId, utcMonth(now)),
      K.keyHeld(userId, keyId),
      reservationId,
      userId,
      keyId,
      model,
      request.promptTokens,
      request.maxCompletionTokens,
      now,
      this.options.reservationTtlMs,
      this.options.freeCreditMicros,
      missPrice,
      outPrice,
    )) as string[];
    if (reply[0] === 'reserved' || reply[0] === 'exists') await this.indexUser(userId, Number(reply[2]));
    switch (reply[0]) {
      case 'reserved':
        return { reservationId, amountMicros: Number(reply[1]), expiresAt: Number(reply[2]), state: 'held' };
      case 'exists':
        return { reservationId, amountMicros: Number(reply[1]), expiresAt: Number(reply[2]), state: reply[3] as Reservation['state'] };
      case 'conflict':
        throw codedError(ErrorCode.Conflict, `reservation ${reservationId} already exists for a different request; expected a new reservationId for each request`, { reservationId });
      case 'unpriced':
        throw codedError(ErrorCode.ModelNotPriced, `model ${JSON.stringify(model)} has no price configured, so it cannot be billed`, { model });
      case 'insufficient': {
        const needed = Number(reply[1]);
        const available = Number(reply[2]);
        throw codedError(ErrorCode.InsufficientBalance, `insufficient balance: this request may cost up to ${needed} micros, but ${available} micros are available; top up or lower maxTokens`, {
          needed,
          available,
        });
      }
      case 'limit': {
        const [, period, cap, spent, reserved, needed] = reply;
        throw codedError(
          ErrorCode.SpendLimitExceeded,
          `API key ${request.keyId}: this request may cost up to ${needed} micros, which would pass the key's ${period === 'DAY' ? 'daily' : 'monthly'} spend limit of ${cap} micros (${spent} spent, ${reserved} held by live requests)`,
          { period, cap: Number(cap), spent: Number(spent), reserved: Number(reserved), needed: Number(needed), apiKeyId: request.keyId },
        );
      }
      default:
        throw new Error(`billing reserve script answered ${JSON.stringify(reply)}`);
    }
  }

  /** Settles one event (see settleMany). */
  async settle(event: UsageEvent, now = Date.now()): Promise<SettleOutcome> {
    return (await this.settleMany([event], now))[0];
  }

  /**
   * Settles events together (one script per event, so each stays atomic; the
   * events' users live in different Cluster slots, so no one pipeline can
   * carry them: on one server auto-pipelining still sends them in one write);
   * the outcomes are in the events' order. Throws when Redis cannot be reached, leaving the events to
   * be delivered again (the ones that did settle are then duplicates); an
   * event whose script Redis refused (an error reply: it would fail again) is
   * `refused`, so one poisoned event cannot hold back the others forever.
   */
  async settleMany(events: readonly UsageEvent[], now = Date.now()): Promise<SettleOutcome[]> {
    if (events.length === 0) return [];
    const prices = new Map<string, Promise<string[]>>();
    for (const { model } of events) if (!prices.has(model)) prices.set(model, this.prices(model));
    const results = await Promise.allSettled(events.map(async (event) => this.settleOne(event, await prices.get(event.model)!, now)));
    return results.map((result, i) => {
      if (result.status === 'fulfilled') return settleOutcome(result.value as string[]);
      const error = result.reason as Error;
      // A failover's refusals (READONLY, CLUSTERDOWN…) are replies too, but they say "not now": the event stays pending.
      const unavailable = redisUnavailable(error);
      if (error?.name === 'ReplyError' && !unavailable) return { status: 'refused', reason: `Redis refused its settlement: ${error.message}` };
      throw unavailable ?? new Error(`settling usage event ${events[i].eventId} failed: ${error?.message}`);
    });
  }

  /**
   * Releases the held reservations that expired by `now` of at most `limit`
   * users; returns how many it released, and whether users were left for
   * another pass.
   */
  async releaseExpired(now = Date.now(), limit = 100): Promise<{ released: number; more: boolean }> {
    const users = await this.redis.zrangebyscore(K.reservationUsers, '-inf', now, 'LIMIT', 0, limit);
    const released = await Promise.all(users.map((userId) => this.releaseExpiredOf(userId, now)));
    return { released: released.reduce((sum, n) => sum + n, 0), more: users.length === limit };
  }

  private async releaseExpiredOf(userId: string, now: number): Promise<number> {
    // Read before looking at the user's reservations: a reservation made after this read changes it, and then REINDEX_USER keeps the user.
    const version = (await this.redis.hget(K.reservationUserVersions, userId)) ?? '';
    const expiring = K.expiringReservations(userId);
    const ids = await this.redis.zrangebyscore(expiring, '-inf', now, 'LIMIT', 0, RELEASE_BATCH);
    // One user's keys share a slot, so these pipelines are fine on a Cluster. A release
    // lost in a failover is harmless: the hold is still held and expired, and is released again.
    const reads = this.redis.pipeline();
    for (const id of ids) reads.hget(K.reservation(userId, id), 'keyId');
    const keyIds = ((await reads.exec()) ?? []).map(([, value]) => (value as string | null) ?? '');
    const releases = this.redis.pipeline();
    ids.forEach((id, i) => {
      (releases as unknown as Record<string, ScriptFn>).billingReleaseExpired(
        K.reservation(userId, id),
        expiring,
        K.balance(userId),
        K.keyHeld(userId, keyIds[i]),
        id,
        now,
        this.options.retentionMs,
        userId,
        keyIds[i],
      );
    });
    const results = ids.length === 0 ? [] : ((await releases.exec()) ?? []);
    const next = await this.redis.zrange(expiring, 0, 0, 'WITHSCORES');
    await this.script('billingReindexUser')(K.reservationUsers, K.reservationUserVersions, userId, version, next[1] ?? '');
    return results.filter(([error, reply]) => !error && reply === 'released').length;
  }

  /**
   * Credits `amountMicros` to the user's topped-up part once per idempotency
   * key; returns whether this call credited (false: the key was used before,
   * for the same user and amount). Throws CONFLICT when the key was used for a
   * different user or amount, BAD_USER_INPUT for an amount out of range.
   */
  async topUp(userId: string, amountMicros: number, idempotencyKey: string, now = Date.now()): Promise<boolean> {
    if (!Number.isSafeInteger(amountMicros) || amountMicros < 1 || amountMicros > MAX_BALANCE_MICROS) {
      throw codedError(ErrorCode.BadUserInput, `topUp expects amountMicros from 1 to ${MAX_BALANCE_MICROS}, but got ${amountMicros}`, { field: 'amountMicros' });
    }
    if (idempotencyKey.length < 1 || idempotencyKey.length > 200) {
      throw codedError(ErrorCode.BadUserInput, `topUp expects an idempotencyKey of 1 to 200 characters, but got ${idempotencyKey.length}`, { field: 'idempotencyKey' });
    }
    // The key is claimed for this user and amount first, then the user is credited once for it: a retry after a crash between the two finishes the top-up.
    const claim = (await this.script('billingClaimTopUp')(K.topUpClaim(idempotencyKey), userId, amountMicros, now)) as string[];
    const reply =
      claim[0] === 'conflict'
        ? claim
        : ((await this.script('billingTopUp')(K.topUpCredited(userId, idempotencyKey), K.balance(userId), amountMicros, this.options.freeCreditMicros, now, MAX_BALANCE_MICROS)) as string[]);
    switch (reply[0]) {
      case 'credited':
        return true;
      case 'duplicate':
        return false;
      case 'conflict':
        throw codedError(
          ErrorCode.Conflict,
          `idempotencyKey ${JSON.stringify(idempotencyKey)} was already used to top up user ${JSON.stringify(reply[1])} by ${reply[2]} micros; expected the same user and amount, but got user ${JSON.stringify(userId)} and ${amountMicros} micros`,
          { field: 'idempotencyKey' },
        );
      case 'too-large':
        throw codedError(ErrorCode.BadUserInput, `topUp would take the balance of ${reply[1]} micros past the maximum of ${MAX_BALANCE_MICROS}`, { field: 'amountMicros' });
      default:
        throw new Error(`billing top-up script answered ${JSON.stringify(reply)}`);
    }
  }

  private settleOne(event: UsageEvent, [hitPrice, missPrice, outPrice]: string[], now: number): Promise<unknown> {
    const { userId, model } = event;
    const keyId = event.keyId ?? '';
    const reservationId = event.reservationId ?? '';
    const day = utcDay(event.endedAt);
    const month = utcMonth(event.endedAt);
    return this.script('billingSettle')(
      K.settled(userId, event.eventId),
      K.balance(userId),
      K.reservation(userId, reservationId),
      K.expiringReservations(userId),
      K.usageDay(userId, day),
      K.usageMonth(userId, month),
      K.usageMonths(userId),
      K.keySpendDay(userId, keyId, day),
      K.keySpendMonth(userId, keyId, month),
      K.keyHeld(userId, keyId),
      event.eventId,
      reservationId,
      userId,
      keyId,
      model,
      event.promptCacheHitTokens,
      event.promptCacheMissTokens,
      event.completionTokens,
      this.options.freeCreditMicros,
      now,
      this.options.retentionMs,
      month,
      month.replace('-', ''),
      KEY_DAY_SPEND_TTL_MS,
      KEY_MONTH_SPEND_TTL_MS,
      hitPrice,
      missPrice,
      outPrice,
    );
  }

  /** The model's cache-hit, cache-miss and output prices as the scripts take them: '' each when the model has none. */
  private async prices(model: string): Promise<string[]> {
    const [currency, ...parts] = await this.redis.hmget(K.price(model), 'currency', 'inputCacheHit', 'inputCacheMiss', 'output');
    return currency === null ? ['', '', ''] : parts.map((part) => part ?? '0');
  }

  private indexUser(userId: string, expiresAt: number): Promise<unknown> {
    return this.script('billingIndexUser')(K.reservationUsers, K.reservationUserVersions, userId, expiresAt);
  }

  /**
   * Every money script answers only once it is replicated (on a Cluster or behind Sentinel: see runReplicated),
   * so a failover cannot undo a change the caller saw. Each is idempotent (keyed by its reservation, event or
   * idempotency key), so one that failed during a failover is run again until it is confirmed.
   */
  private script(name: string): ScriptFn {
    return (...args) => retryDuringFailover(this.redis, () => runReplicated(this.redis, name, args));
  }
}

function settleOutcome(reply: string[]): SettleOutcome {
  switch (reply[0]) {
    case 'settled':
      return { status: 'settled', charge: Number(reply[1]), charged: Number(reply[2]), shortfall: Number(reply[3]), reservation: reply[4] as 'none' };
    case 'duplicate':
      return { status: 'duplicate' };
    case 'unpriced':
      return { status: 'refused', reason: 'the model has no price configured' };
    case 'mismatch':
      return { status: 'refused', reason: `the event's ${reply[1]} differs from its reservation's` };
    case 'resettled':
      return { status: 'refused', reason: `its reservation was already settled by event ${reply[1]}` };
    default:
      throw new Error(`billing settle script answered ${JSON.stringify(reply)}`);
  }
}

function validateReservation(request: ReservationRequest): void {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw codedError(ErrorCode.BadUserInput, `reservation ${field} expects ${expected}, but got ${JSON.stringify(got)}`, { field });
  };
  if (typeof request.reservationId !== 'string' || !UUID_PATTERN.test(request.reservationId)) fail('reservationId', 'a UUID', request.reservationId);
  if (typeof request.model !== 'string' || !ID_PATTERN.test(request.model)) fail('model', 'a model id', request.model);
  for (const field of ['promptTokens', 'maxCompletionTokens'] as const) {
    const value = request[field];
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_TOKENS_PER_EVENT) fail(field, `an integer from 0 to ${MAX_TOKENS_PER_EVENT}`, value);
  }
}
