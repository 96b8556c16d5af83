import type { ChainableCommander } from 'ioredis';
import type Redis from 'ioredis';
import type { Reservation } from '../../lib/billing-client';
import { codedError, ErrorCode } from '../../lib/errors';
import { ID_PATTERN, MAX_TOKENS_PER_EVENT, UUID_PATTERN, type UsageEvent } from '../../lib/usage-events';
import { billingKeys as K, utcDay, utcMonth } from './keys';
import { RELEASE_EXPIRED, RESERVE, SETTLE, TOP_UP } from './ledger-lua';

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

/**
 * Every money change of billing, each one Lua script (see ledger-lua.ts):
 * reserve, settle, release an expired reservation, top up.
 */
export class Ledger {
  constructor(
    private readonly redis: Redis,
    private readonly options: LedgerOptions,
  ) {
    redis.defineCommand('billingReserve', { numberOfKeys: 8, lua: RESERVE });
    redis.defineCommand('billingSettle', { numberOfKeys: 11, lua: SETTLE });
    redis.defineCommand('billingReleaseExpired', { numberOfKeys: 4, lua: RELEASE_EXPIRED });
    redis.defineCommand('billingTopUp', { numberOfKeys: 2, lua: TOP_UP });
  }

  /** Holds the request's maximum cost, or throws INSUFFICIENT_BALANCE, SPEND_LIMIT_EXCEEDED, MODEL_NOT_PRICED, CONFLICT or BAD_USER_INPUT. */
  async reserve(request: ReservationRequest, now = Date.now()): Promise<Reservation> {
    validateReservation(request);
    const { reservationId, userId, model } = request;
    const keyId = request.keyId ?? '';
    const reply = (await this.script('billingReserve')(
      K.reservation(reservationId),
      K.balance(userId),
      K.expiringReservations,
      K.price(model),
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
    )) as string[];
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
        throw codedError(
          ErrorCode.InsufficientBalance,
          `insufficient balance: this request may cost up to ${needed} micros, but ${available} micros are available; top up or lower maxTokens`,
          { needed, available },
        );
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
   * Settles events in one pipeline (one script per event, so each stays
   * atomic); the outcomes are in the events' order. Throws when Redis cannot
   * be reached, leaving the events to be delivered again; an event whose
   * script Redis refused (an error reply: it would fail again) is `refused`,
   * so one poisoned event cannot hold back the others forever.
   */
  async settleMany(events: readonly UsageEvent[], now = Date.now()): Promise<SettleOutcome[]> {
    if (events.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const event of events) this.queueSettle(pipeline, event, now);
    const results = (await pipeline.exec()) ?? [];
    return results.map(([error, reply], i) => {
      if (error?.name === 'ReplyError') return { status: 'refused', reason: `Redis refused its settlement: ${error.message}` };
      if (error) throw new Error(`settling usage event ${events[i].eventId} failed: ${error.message}`);
      return settleOutcome(reply as string[]);
    });
  }

  /** Releases held reservations that expired by `now`, at most `limit`; returns how many it released. */
  async releaseExpired(now = Date.now(), limit = 500): Promise<number> {
    const ids = await this.redis.zrangebyscore(K.expiringReservations, '-inf', now, 'LIMIT', 0, limit);
    if (ids.length === 0) return 0;
    const reads = this.redis.pipeline();
    for (const id of ids) reads.hmget(K.reservation(id), 'userId', 'keyId');
    const owners = ((await reads.exec()) ?? []).map(([, value]) => value as (string | null)[]);
    const releases = this.redis.pipeline();
    ids.forEach((id, i) => {
      const userId = owners[i]?.[0] ?? '';
      const keyId = owners[i]?.[1] ?? '';
      (releases as unknown as Record<string, ScriptFn>).billingReleaseExpired(
        K.reservation(id),
        K.expiringReservations,
        K.balance(userId),
        K.keyHeld(userId, keyId),
        id,
        now,
        this.options.retentionMs,
        userId,
        keyId,
      );
    });
    const results = (await releases.exec()) ?? [];
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
    const reply = (await this.script('billingTopUp')(
      K.topUp(idempotencyKey),
      K.balance(userId),
      userId,
      amountMicros,
      this.options.freeCreditMicros,
      now,
      MAX_BALANCE_MICROS,
    )) as string[];
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

  private queueSettle(pipeline: ChainableCommander, event: UsageEvent, now: number): void {
    const { userId, model } = event;
    const keyId = event.keyId ?? '';
    const reservationId = event.reservationId ?? '';
    const day = utcDay(event.endedAt);
    const month = utcMonth(event.endedAt);
    (pipeline as unknown as Record<string, ScriptFn>).billingSettle(
      K.settled(event.eventId),
      K.balance(userId),
      K.reservation(reservationId),
      K.expiringReservations,
      K.price(model),
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
    );
  }

  private script(name: string): ScriptFn {
    return (this.redis as unknown as Record<string, ScriptFn>)[name].bind(this.redis);
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
