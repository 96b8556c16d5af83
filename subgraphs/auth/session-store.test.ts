import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { SessionStore } from './session-store';

let redis: Redis;
let sessions: SessionStore;

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  await redis.flushall();
  sessions = new SessionStore(redis, 12 * 3600 * 1000);
});

afterEach(() => redis.disconnect());

describe('SessionStore', () => {
  it('answers revoked only after logout, and keeps the revocation exactly as long as the token lives', async () => {
    const now = Date.now();
    await sessions.recordIssued('s1', new Date(now + 600_000), now);
    expect(await sessions.isRevoked('s1')).toBe(false);
    await sessions.revoke('s1');
    expect(await sessions.isRevoked('s1')).toBe(true);
    const ttl = await redis.pttl('auth:session:s1');
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);
    expect(await sessions.isRevoked('s2')).toBe(false);
  });

  it('revokes a session it has no record of for the longest a session can live', async () => {
    await sessions.revoke('unrecorded');
    expect(await sessions.isRevoked('unrecorded')).toBe(true);
    expect(await redis.pttl('auth:session:unrecorded')).toBeGreaterThan(12 * 3600 * 1000 - 10_000);
  });
});
