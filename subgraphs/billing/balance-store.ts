import type Redis from 'ioredis';
import { billingKeys } from './keys';

export interface Balance {
  currency: string;
  granted: number;
  toppedUp: number;
  /** granted + toppedUp: what the user owns. */
  total: number;
  /** Held by live reservations (requests running now). */
  reserved: number;
  /** total − reserved: what a new request can reserve. */
  available: number;
}

/**
 * Opens the account with the free credit the first time it is read, and
 * returns its parts in one step, so two first reads cannot grant twice. The
 * ledger's scripts open accounts the same way (ledger-lua.ts).
 */
const OPEN_AND_READ = `
if redis.call('HSETNX', KEYS[1], 'granted', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'toppedUp', 0, 'held', 0, 'openedAt', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'granted', 'toppedUp', 'held')
`;

/**
 * Balances in integer micro-units under `billing:{<user>}:balance`. A new user
 * starts with a configurable free credit (the granted part).
 */
export class BalanceStore {
  constructor(
    private readonly redis: Redis,
    private readonly freeCreditMicros: number,
    private readonly currency: string,
  ) {}

  async forUser(userId: string): Promise<Balance> {
    const [granted, toppedUp, held] = (await this.redis.eval(OPEN_AND_READ, 1, billingKeys.balance(userId), this.freeCreditMicros, Date.now())) as (string | null)[];
    const g = Number(granted);
    const t = Number(toppedUp);
    const r = Number(held ?? 0);
    return { currency: this.currency, granted: g, toppedUp: t, total: g + t, reserved: r, available: g + t - r };
  }
}
