import type Redis from 'ioredis';

/**
 * The usage-event contract between inference (the producer: one event per
 * ended request, whatever way it ended) and billing (the consumer, which
 * settles each event exactly once by `eventId`).
 *
 * Events travel on a Redis Stream under billing's prefix, as flat field/value
 * pairs (one field per property, numbers in decimal, `null` as an empty
 * string) with a version field `v`, so `XRANGE` output stays readable and a
 * future version can be told apart.
 */
export const USAGE_EVENTS_STREAM = 'billing:usage-events';
/** Where billing keeps events it could not settle (malformed, unpriced model…), with the reason, for an operator. */
export const USAGE_DEAD_LETTER_STREAM = 'billing:usage-events:dead';

export const USAGE_EVENT_VERSION = '1';

export type FinishReason = 'STOP' | 'LENGTH' | 'CANCELLED' | 'ERROR';
export const FINISH_REASONS: readonly FinishReason[] = ['STOP', 'LENGTH', 'CANCELLED', 'ERROR'];

/**
 * Token counts above this in one event are refused. It keeps billing's money
 * arithmetic exact: settlement multiplies tokens by prices (at most
 * MAX_PRICE_MICROS_PER_MILLION) in Lua, whose numbers are doubles, and
 * 3 parts × 10^7 tokens × 2×10^8 micros = 6×10^15 stays below 2^53.
 */
export const MAX_TOKENS_PER_EVENT = 10_000_000;

/**
 * What a request used, as the graph's `Usage` type shows it (inference and
 * knowledge both return it): the same numbers as the request's usage event.
 */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
}

export interface UsageEvent {
  /** A UUID, the idempotency key: the same event delivered twice is charged once. */
  eventId: string;
  /** The reservation made before the request started, or null when none was made. */
  reservationId: string | null;
  userId: string;
  /** The API key the request came with; null for a session. */
  keyId: string | null;
  model: string;
  modelVersion: string;
  /** Always promptCacheHitTokens + promptCacheMissTokens. */
  promptTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
  /** Tokens actually generated (and sent), also for a cancelled or failed request. */
  completionTokens: number;
  finishReason: FinishReason;
  /** When the request ended, epoch milliseconds; the usage is booked on that UTC day. */
  endedAt: number;
}

export class UsageEventError extends Error {
  override name = 'UsageEventError';
}

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** User, key and model ids end up inside Redis key names and ledger field names (`<model>|<part>`), so they are kept to a safe alphabet. */
export const ID_PATTERN = /^[A-Za-z0-9._:@/-]{1,128}$/;

const TOKEN_FIELDS = ['promptTokens', 'promptCacheHitTokens', 'promptCacheMissTokens', 'completionTokens'] as const;

/** Throws a UsageEventError naming the first property that is wrong, what was expected and what was got. */
export function validateUsageEvent(event: UsageEvent): UsageEvent {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new UsageEventError(`usage event ${field} expects ${expected}, but got ${JSON.stringify(got)}`);
  };
  if (typeof event.eventId !== 'string' || !UUID_PATTERN.test(event.eventId)) fail('eventId', 'a UUID', event.eventId);
  if (event.reservationId !== null && (typeof event.reservationId !== 'string' || !UUID_PATTERN.test(event.reservationId))) {
    fail('reservationId', 'a UUID or null', event.reservationId);
  }
  if (typeof event.userId !== 'string' || !ID_PATTERN.test(event.userId)) fail('userId', `an id matching ${ID_PATTERN}`, event.userId);
  if (event.keyId !== null && (typeof event.keyId !== 'string' || !ID_PATTERN.test(event.keyId))) fail('keyId', `an id matching ${ID_PATTERN} or null`, event.keyId);
  if (typeof event.model !== 'string' || !ID_PATTERN.test(event.model)) fail('model', `a model id matching ${ID_PATTERN}`, event.model);
  if (typeof event.modelVersion !== 'string' || event.modelVersion.length > 64) fail('modelVersion', 'a string of at most 64 characters', event.modelVersion);
  for (const field of TOKEN_FIELDS) {
    const value = event[field];
    if (!Number.isSafeInteger(value) || value < 0 || value > MAX_TOKENS_PER_EVENT) fail(field, `an integer from 0 to ${MAX_TOKENS_PER_EVENT}`, value);
  }
  if (event.promptTokens !== event.promptCacheHitTokens + event.promptCacheMissTokens) {
    fail('promptTokens', `promptCacheHitTokens + promptCacheMissTokens = ${event.promptCacheHitTokens + event.promptCacheMissTokens}`, event.promptTokens);
  }
  if (!FINISH_REASONS.includes(event.finishReason)) fail('finishReason', `one of ${FINISH_REASONS.join(', ')}`, event.finishReason);
  if (!Number.isSafeInteger(event.endedAt) || event.endedAt <= 0) fail('endedAt', 'epoch milliseconds (a positive integer)', event.endedAt);
  return event;
}

/** The stream fields of an event: `v`, then every property in a fixed order. */
export function encodeUsageEvent(event: UsageEvent): string[] {
  validateUsageEvent(event);
  return [
    'v',
    USAGE_EVENT_VERSION,
    'eventId',
    event.eventId,
    'reservationId',
    event.reservationId ?? '',
    'userId',
    event.userId,
    'keyId',
    event.keyId ?? '',
    'model',
    event.model,
    'modelVersion',
    event.modelVersion,
    'promptTokens',
    String(event.promptTokens),
    'promptCacheHitTokens',
    String(event.promptCacheHitTokens),
    'promptCacheMissTokens',
    String(event.promptCacheMissTokens),
    'completionTokens',
    String(event.completionTokens),
    'finishReason',
    event.finishReason,
    'endedAt',
    String(event.endedAt),
  ];
}

/** Reads an event back from stream fields (as XREADGROUP returns them); throws a UsageEventError when it is not a valid event. */
export function decodeUsageEvent(fields: readonly string[]): UsageEvent {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i], fields[i + 1]);
  if (map.get('v') !== USAGE_EVENT_VERSION) {
    throw new UsageEventError(`usage event v expects ${JSON.stringify(USAGE_EVENT_VERSION)}, but got ${JSON.stringify(map.get('v') ?? null)}`);
  }
  const text = (name: string) => map.get(name) ?? '';
  const nullable = (name: string) => (text(name) === '' ? null : text(name));
  const integer = (name: string) => {
    if (!/^\d{1,16}$/.test(text(name))) throw new UsageEventError(`usage event ${name} expects a non-negative integer in decimal, but got ${JSON.stringify(map.get(name) ?? null)}`);
    return Number(text(name));
  };
  return validateUsageEvent({
    eventId: text('eventId'),
    reservationId: nullable('reservationId'),
    userId: text('userId'),
    keyId: nullable('keyId'),
    model: text('model'),
    modelVersion: text('modelVersion'),
    promptTokens: integer('promptTokens'),
    promptCacheHitTokens: integer('promptCacheHitTokens'),
    promptCacheMissTokens: integer('promptCacheMissTokens'),
    completionTokens: integer('completionTokens'),
    finishReason: text('finishReason') as FinishReason,
    endedAt: integer('endedAt'),
  });
}

/**
 * Appends one event to the usage stream (XADD) and returns its stream id.
 * Validates first, so a producer bug fails in the producer, not in billing's
 * dead-letter stream. Publishing the same event again is harmless: billing
 * settles by `eventId`. Retry on failure; never drop an event.
 */
export async function publishUsageEvent(redis: Redis, event: UsageEvent): Promise<string> {
  const id = await redis.xadd(USAGE_EVENTS_STREAM, '*', ...encodeUsageEvent(event));
  return id as string;
}
