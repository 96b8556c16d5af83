import type Redis from 'ioredis';
import { codedError, ErrorCode } from '../../lib/errors';
import { ID_PATTERN } from '../../lib/usage-events';
import { MAX_BALANCE_MICROS } from './ledger';
import { billingKeys as K, utcDay, utcMonth } from './keys';

export interface SpendLimit {
  apiKeyId: string;
  /** Caps in micros; null when the period is not capped. */
  daily: number | null;
  monthly: number | null;
  /** Settled spend through the key in the current UTC day and month. */
  spentToday: number;
  spentThisMonth: number;
  /** Held by the key's live requests; counted against both caps. */
  reserved: number;
}

/**
 * Per-API-key spend caps, set by the key's owner and stored under the owner
 * (`billing:{<user>}:keylimit:<key>`), so only the owner's own requests through
 * that key are capped: a caller naming someone else's key id caps nothing of
 * theirs. Enforcement is in the reservation script, which counts settled spend
 * and live reservations in the same atomic step that holds the new one.
 */
export class SpendLimits {
  constructor(private readonly redis: Redis) {}

  /** Sets (a number) or clears (null) each cap; clearing both forgets the key. */
  async set(userId: string, apiKeyId: string, daily: number | null, monthly: number | null, now = Date.now()): Promise<SpendLimit> {
    if (!ID_PATTERN.test(apiKeyId)) throw codedError(ErrorCode.BadUserInput, `setApiKeySpendLimit expects an API key id, but got ${JSON.stringify(apiKeyId)}`, { field: 'apiKeyId' });
    for (const [field, value] of [
      ['dailyMicros', daily],
      ['monthlyMicros', monthly],
    ] as const) {
      if (value !== null && (!Number.isSafeInteger(value) || value < 0 || value > MAX_BALANCE_MICROS)) {
        throw codedError(ErrorCode.BadUserInput, `setApiKeySpendLimit expects ${field} from 0 to ${MAX_BALANCE_MICROS} or null, but got ${value}`, { field });
      }
    }
    const key = K.keyLimit(userId, apiKeyId);
    const tx = this.redis.multi();
    if (daily === null) tx.hdel(key, 'daily');
    else tx.hset(key, 'daily', daily);
    if (monthly === null) tx.hdel(key, 'monthly');
    else tx.hset(key, 'monthly', monthly);
    if (daily === null && monthly === null) tx.srem(K.keyLimits(userId), apiKeyId);
    else tx.sadd(K.keyLimits(userId), apiKeyId);
    await tx.exec();
    return (await this.read(userId, [apiKeyId], now))[0];
  }

  /** Every key the user has capped, in key id order. */
  async list(userId: string, now = Date.now()): Promise<SpendLimit[]> {
    const ids = (await this.redis.smembers(K.keyLimits(userId))).sort();
    return this.read(userId, ids, now);
  }

  private async read(userId: string, ids: string[], now: number): Promise<SpendLimit[]> {
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) {
      pipeline.hmget(K.keyLimit(userId, id), 'daily', 'monthly');
      pipeline.get(K.keySpendDay(userId, id, utcDay(now)));
      pipeline.get(K.keySpendMonth(userId, id, utcMonth(now)));
      pipeline.get(K.keyHeld(userId, id));
    }
    const replies = ((await pipeline.exec()) ?? []).map(([error, value]) => {
      if (error) throw error;
      return value;
    });
    const cap = (value: string | null) => (value === null ? null : Number(value));
    return ids.map((apiKeyId, i) => {
      const [caps, day, month, held] = replies.slice(i * 4, i * 4 + 4) as [(string | null)[], string | null, string | null, string | null];
      return { apiKeyId, daily: cap(caps[0]), monthly: cap(caps[1]), spentToday: Number(day ?? 0), spentThisMonth: Number(month ?? 0), reserved: Number(held ?? 0) };
    });
  }
}
