import type Redis from 'ioredis';

/**
 * Which sessions are logged out. Each issued session gets `auth:session:<jti>`
 * = `active`, expiring with its token; logout turns it into `revoked` for the
 * token's remaining life, after which the token is refused for having expired
 * anyway and the record can go.
 */
const REVOKE = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then ttl = tonumber(ARGV[1]) end
redis.call('SET', KEYS[1], 'revoked', 'PX', ttl)
return 1
`;

export class SessionStore {
  constructor(
    private readonly redis: Redis,
    /** The longest a session can live, for sessions issued before records were kept. */
    private readonly maxTtlMs: number,
  ) {}

  async recordIssued(sessionId: string, expiresAt: Date, now = Date.now()): Promise<void> {
    await this.redis.set(sessionKey(sessionId), 'active', 'PX', Math.max(1, expiresAt.getTime() - now));
  }

  /** Revokes the session until its token expires (or for the session lifetime when no record exists). */
  async revoke(sessionId: string): Promise<void> {
    await this.redis.eval(REVOKE, 1, sessionKey(sessionId), String(this.maxTtlMs));
  }

  async isRevoked(sessionId: string): Promise<boolean> {
    return (await this.redis.get(sessionKey(sessionId))) === 'revoked';
  }
}

const sessionKey = (sessionId: string) => `auth:session:${sessionId}`;
