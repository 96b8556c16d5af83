import type Redis from 'ioredis';

export interface SignUpLimits {
  /** Sign-up attempts one client address may make per window (AUTH_SIGNUPS_PER_IP). */
  perIp: number;
  /** The window, in seconds (AUTH_SIGNUP_WINDOW_SECONDS). */
  windowSeconds: number;
}

export type SignUpVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * Sign-ups per client address, in fixed windows (Redis, `auth:signups:ip:<ip>`):
 * every new account gets free credit (BILLING_FREE_CREDIT_MICROS), so one
 * address must not open accounts by the thousand. Attempts count, successful
 * or not, so probing which e-mails exist is limited too. A caller whose
 * address the gateway did not see (an internal call) is not limited here.
 */
export class SignUpLimit {
  constructor(
    private readonly redis: Redis,
    readonly limits: SignUpLimits,
  ) {}

  async attempt(ip: string | undefined): Promise<SignUpVerdict> {
    if (!ip) return { allowed: true };
    const key = `auth:signups:ip:${ip}`;
    const replies = (await this.redis
      .multi()
      .set(key, '0', 'PX', this.limits.windowSeconds * 1000, 'NX')
      .incr(key)
      .pttl(key)
      .exec()) as [[null, unknown], [null, number], [null, number]];
    const [, [, count], [, ttlMs]] = replies;
    return count <= this.limits.perIp ? { allowed: true } : { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(ttlMs / 1000)) };
  }
}
