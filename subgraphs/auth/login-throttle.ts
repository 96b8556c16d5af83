import type Redis from 'ioredis';

export interface LoginThrottleLimits {
  /** Failed logins allowed per e-mail address within one window. */
  maxFailuresPerAccount: number;
  /** Failed logins allowed per client address within one window. */
  maxFailuresPerIp: number;
  windowSeconds: number;
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; by: 'account' | 'ip'; retryAfterSeconds: number };

/**
 * Takes one attempt on one counter: refused (and not counted) when it is at
 * its limit; otherwise counted as a failure up front, so concurrent guesses
 * cannot all slip past the check before their failures are recorded.
 * KEYS[1] the counter; ARGV: limit, window in ms. Returns the ms until the
 * counter resets when refused, else -1.
 */
const ATTEMPT = `
if tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then ttl = tonumber(ARGV[2]) end
  return ttl
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return -1
`;

/** Gives back one attempt a counter was charged. */
const GIVE_BACK = `
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 1
`;

/**
 * Login throttling against brute force, in fixed windows per account and per
 * client address (Redis, `auth:login-failures:*`). Checked before the password
 * is, so a throttled caller learns nothing about it, not even from a right one.
 * The two counters are in different Redis Cluster slots, so an attempt takes
 * the account's, then the address's, and gives the account's back when the
 * address refuses (a crash between counts one failure too many, never too few).
 */
export class LoginThrottle {
  constructor(
    private readonly redis: Redis,
    readonly limits: LoginThrottleLimits,
  ) {}

  async attempt(email: string, ip: string | undefined): Promise<ThrottleVerdict> {
    const account = accountKey(email);
    const byAccount = await this.take(account, this.limits.maxFailuresPerAccount);
    if (byAccount >= 0) return refused('account', byAccount);
    if (!ip) return { allowed: true };
    const byIp = await this.take(ipKey(ip), this.limits.maxFailuresPerIp);
    if (byIp < 0) return { allowed: true };
    await this.redis.eval(GIVE_BACK, 1, account);
    return refused('ip', byIp);
  }

  /** A successful login: the account starts afresh; the address only gets back the attempt it was charged. */
  async succeeded(email: string, ip: string | undefined): Promise<void> {
    await this.redis.del(accountKey(email));
    if (ip) await this.redis.eval(GIVE_BACK, 1, ipKey(ip));
  }

  private async take(key: string, limit: number): Promise<number> {
    return (await this.redis.eval(ATTEMPT, 1, key, String(limit), String(this.limits.windowSeconds * 1000))) as number;
  }
}

const accountKey = (email: string) => `auth:login-failures:account:${email.trim().toLowerCase()}`;
const ipKey = (ip: string) => `auth:login-failures:ip:${ip}`;
const refused = (by: 'account' | 'ip', ttlMs: number): ThrottleVerdict => ({ allowed: false, by, retryAfterSeconds: Math.max(1, Math.ceil(ttlMs / 1000)) });
