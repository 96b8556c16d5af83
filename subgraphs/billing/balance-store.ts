import type Redis from 'ioredis';

export interface Balance {
  currency: string;
  granted: number;
  toppedUp: number;
  total: number;
}

/**
 * Opens the account with the free credit the first time it is read, and
 * returns both parts in one step, so two first reads cannot grant twice.
 */
const OPEN_AND_READ = `
if redis.call('HSETNX', KEYS[1], 'granted', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'toppedUp', 0, 'openedAt', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'granted', 'toppedUp')
`;

/**
 * Balances in integer micro-units under `billing:balance:<user>`. A new user
 * starts with a configurable free credit (the granted part).
 */
export class BalanceStore {
  constructor(
    private readonly redis: Redis,
    private readonly freeCreditMicros: number,
    private readonly currency: string,
  ) {}

  async forUser(userId: string): Promise<Balance> {
    const [granted, toppedUp] = (await this.redis.eval(OPEN_AND_READ, 1, balanceKey(userId), this.freeCreditMicros, Date.now())) as [string, string];
    const g = Number(granted);
    const t = Number(toppedUp);
    return { currency: this.currency, granted: g, toppedUp: t, total: g + t };
  }
}

const balanceKey = (userId: string) => `billing:balance:${userId}`;
