/**
 * Every Redis key billing owns, in one place (all under `billing:`; no other
 * service reads them). Periods are UTC: a day is `YYYY-MM-DD`, a month `YYYY-MM`.
 *
 * A user's keys carry the hash tag `{<user>}`, so on Redis Cluster they share
 * one slot and every money script (which touches only one user's keys) runs
 * on one node. The few keys shared by all users have tags of their own
 * (`{price}`, `{reservations}`) and are never in a script with a user's keys.
 */
const user = (userId: string) => `billing:{${userId}}`;

export const billingKeys = {
  /** Hash: `granted`, `toppedUp`, `held` (sum of live reservations), `openedAt`. */
  balance: (userId: string) => `${user(userId)}:balance`,
  /** Hash: `currency`, `inputCacheHit`, `inputCacheMiss`, `output` (micros per 1M tokens). One slot, so the prices are seeded in one transaction. */
  price: (model: string) => `billing:{price}:${model}`,
  /** Hash: `userId`, `keyId` ('' for a session), `request`, `amount`, `createdAt`, `expiresAt`, `state` (held | settled | expired), `settledBy`. */
  reservation: (userId: string, reservationId: string) => `${user(userId)}:reservation:${reservationId}`,
  /** Sorted set of the user's held reservation ids by expiry (ms). */
  expiringReservations: (userId: string) => `${user(userId)}:reservations:expiring`,
  /** Sorted set of users who may hold a reservation, by the earliest expiry (ms): what the sweeper scans. */
  reservationUsers: 'billing:{reservations}:users',
  /** Hash user → counter, bumped by every reservation: the sweeper forgets a user only if no reservation came since it looked. */
  reservationUserVersions: 'billing:{reservations}:versions',
  /** Present while an event counts as settled (idempotency marker, with a TTL). */
  settled: (userId: string, eventId: string) => `${user(userId)}:settled:${eventId}`,
  /** Hash of `<model>|<part>` → integer, part ∈ requests, hit, miss, out, amount, shortfall. */
  usageDay: (userId: string, day: string) => `${user(userId)}:usage:day:${day}`,
  usageMonth: (userId: string, month: string) => `${user(userId)}:usage:month:${month}`,
  /** Sorted set of the months with usage (score YYYYMM), for invoices. */
  usageMonths: (userId: string) => `${user(userId)}:usage:months`,
  /** Hash: `daily`, `monthly` caps in micros, set by the key's owner. */
  keyLimit: (userId: string, keyId: string) => `${user(userId)}:keylimit:${keyId}`,
  /** Set of the key ids the user has capped. */
  keyLimits: (userId: string) => `${user(userId)}:keylimits`,
  /** Settled spend through one key in one period (string counters with a TTL). */
  keySpendDay: (userId: string, keyId: string, day: string) => `${user(userId)}:keyspend:${keyId}:day:${day}`,
  keySpendMonth: (userId: string, keyId: string, month: string) => `${user(userId)}:keyspend:${keyId}:month:${month}`,
  /** Sum of the key's live reservations (string counter). */
  keyHeld: (userId: string, keyId: string) => `${user(userId)}:keyheld:${keyId}`,
  /** Hash: `userId`, `amount`, `at`: who a top-up idempotency key belongs to, kept for good (step one of a top-up). */
  topUpClaim: (idempotencyKey: string) => `billing:topup:${idempotencyKey}`,
  /** Present once the user was credited for the idempotency key (step two), kept for good. */
  topUpCredited: (userId: string, idempotencyKey: string) => `${user(userId)}:topup:${idempotencyKey}`,
  /** In-memory mode only: the stream id of the last usage event the poller settled. */
  usagePollerCursor: 'billing:usage-events:cursor',
};

/** `YYYY-MM-DD` of an instant, UTC. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
/** `YYYY-MM` of an instant, UTC. */
export const utcMonth = (ms: number): string => new Date(ms).toISOString().slice(0, 7);
