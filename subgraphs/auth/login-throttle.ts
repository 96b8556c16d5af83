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
 * Takes one attempt: refused (and not counted) when a counter is at its limit;
 * otherwise counted as a failure up front, so concurrent guesses cannot all
 * slip past the check before their failures are recorded. A success gives it back.
 * KEYS[1] the account counter, KEYS[2] (optional) the address counter;
 * ARGV: account limit, address limit, window in ms.
 */
const ATTEMPT = `
for i, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then ttl = tonumber(ARGV[3]) end
    return {i, ttl}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[3]) end
end
return {0, 0}
`;

/** A successful login: the account starts afresh; the address only gets back the attempt it was charged. */
const SUCCEED = `
redis.call('DEL', KEYS[1])
if KEYS[2] and tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 1
`;

/**
 * Login throttling against brute force, in fixed windows per account and per
 * client address (Redis, `auth:login-failures:*`). Checked before the password
 * is, so a throttled caller learns nothing about it, not even from a right one.
 */
export class LoginThrottle {
  constructor(
    private readonly redis: Redis,
    readonly limits: LoginThrottleLimits,
  ) {}

  async attempt(email: string, ip: string | undefined): Promise<ThrottleVerdict> {
    const keys = this.keys(email, ip);
    const [which, ttlMs] = (await this.redis.eval(
      ATTEMPT,
      keys.length,
      ...keys,
      String(this.limits.maxFailuresPerAccount),
      String(this.limits.maxFailuresPerIp),
      String(this.limits.windowSeconds * 1000),
    )) as [number, number];
    if (which === 0) return { allowed: true };
    return { allowed: false, by: which === 1 ? 'account' : 'ip', retryAfterSeconds: Math.max(1, Math.ceil(ttlMs / 1000)) };
  }

  async succeeded(email: string, ip: string | undefined): Promise<void> {
    const keys = this.keys(email, ip);
    await this.redis.eval(SUCCEED, keys.length, ...keys);
  }

  private keys(email: string, ip: string | undefined): string[] {
    const keys = [`auth:login-failures:account:${email.trim().toLowerCase()}`];
    if (ip) keys.push(`auth:login-failures:ip:${ip}`);
    return keys;
  }
}
