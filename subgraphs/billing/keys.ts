/**
 * Every Redis key billing owns, in one place (all under `billing:`; no other
 * service reads them). Periods are UTC: a day is `YYYY-MM-DD`, a month `YYYY-MM`.
 */
export const billingKeys = {
  /** Hash: `granted`, `toppedUp`, `held` (sum of live reservations), `openedAt`. */
  balance: (userId: string) => `billing:balance:${userId}`,
  /** Hash: `currency`, `inputCacheHit`, `inputCacheMiss`, `output` (micros per 1M tokens). */
  price: (model: string) => `billing:price:${model}`,
  /** Hash: `userId`, `keyId` ('' for a session), `request`, `amount`, `createdAt`, `expiresAt`, `state` (held | settled | expired), `settledBy`. */
  reservation: (reservationId: string) => `billing:reservation:${reservationId}`,
  /** Sorted set of held reservation ids by expiry (ms), what the sweeper scans. */
  expiringReservations: 'billing:reservations:expiring',
  /** Present while an event counts as settled (idempotency marker, with a TTL). */
  settled: (eventId: string) => `billing:settled:${eventId}`,
  /** Hash of `<model>|<part>` → integer, part ∈ requests, hit, miss, out, amount, shortfall. */
  usageDay: (userId: string, day: string) => `billing:usage:${userId}:day:${day}`,
  usageMonth: (userId: string, month: string) => `billing:usage:${userId}:month:${month}`,
  /** Sorted set of the months with usage (score YYYYMM), for invoices. */
  usageMonths: (userId: string) => `billing:usage:${userId}:months`,
  /** Hash: `daily`, `monthly` caps in micros, set by the key's owner. */
  keyLimit: (userId: string, keyId: string) => `billing:keylimit:${userId}:${keyId}`,
  /** Set of the key ids the user has capped. */
  keyLimits: (userId: string) => `billing:keylimits:${userId}`,
  /** Settled spend through one key in one period (string counters with a TTL). */
  keySpendDay: (userId: string, keyId: string, day: string) => `billing:keyspend:${userId}:${keyId}:day:${day}`,
  keySpendMonth: (userId: string, keyId: string, month: string) => `billing:keyspend:${userId}:${keyId}:month:${month}`,
  /** Sum of the key's live reservations (string counter). */
  keyHeld: (userId: string, keyId: string) => `billing:keyheld:${userId}:${keyId}`,
  /** Hash: `userId`, `amount`, `at`: one per top-up idempotency key, kept for good. */
  topUp: (idempotencyKey: string) => `billing:topup:${idempotencyKey}`,
  /** In-memory mode only: the stream id of the last usage event the poller settled. */
  usagePollerCursor: 'billing:usage-events:cursor',
};

/** `YYYY-MM-DD` of an instant, UTC. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
/** `YYYY-MM` of an instant, UTC. */
export const utcMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
