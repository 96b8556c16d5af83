import type Redis from 'ioredis';
import { GraphQLError } from 'graphql';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { ApiKeyStore } from './api-key-store';
import { ApiKeys, hashSecret } from './api-keys';
import { SESSION_SCOPES } from './scopes';

let redis: Redis;
let now: Date;
let keys: ApiKeys;

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  await redis.flushall();
  now = new Date('2026-01-01T00:00:00Z');
  keys = new ApiKeys(new ApiKeyStore(redis), { now: () => now, touchIntervalMs: 60_000 });
});

afterEach(() => redis.disconnect());

async function rejection(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

describe('ApiKeys', () => {
  it('creates an sk- secret of 32 random bytes, shows its 8-character prefix, and stores only its SHA-256', async () => {
    const { secret, apiKey } = await keys.create('u1', SESSION_SCOPES, '  CI  ', ['inference:invoke']);
    expect(secret).toMatch(/^sk-[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret.slice(3), 'base64url')).toHaveLength(32);
    expect(apiKey).toEqual({
      id: expect.any(String),
      userId: 'u1',
      name: 'CI',
      scopes: ['inference:invoke'],
      prefix: secret.slice(0, 8),
      createdAt: now,
      lastUsedAt: null,
      revokedAt: null,
    });
    const stored: string[] = [];
    for (const key of await redis.keys('*')) {
      stored.push(key);
      const type = await redis.type(key);
      if (type === 'hash') stored.push(...Object.values(await redis.hgetall(key)));
      else if (type === 'string') stored.push((await redis.get(key)) as string);
      else if (type === 'zset') stored.push(...(await redis.zrange(key, 0, -1)));
    }
    expect(stored.some((value) => value.includes(secret.slice(8)))).toBe(false);
    expect(stored).toContain(hashSecret(secret));
    expect((await redis.keys('*')).every((key) => key.startsWith('auth:'))).toBe(true);
  });

  it("lists a user's keys oldest first, and nobody else's", async () => {
    const first = await keys.create('u1', SESSION_SCOPES, 'one', ['knowledge:read']);
    now = new Date(now.getTime() + 1000);
    const second = await keys.create('u1', SESSION_SCOPES, 'two', ['billing:read', 'knowledge:write']);
    await keys.create('u2', SESSION_SCOPES, 'theirs', ['billing:read']);
    expect((await keys.list('u1')).map((k) => k.id)).toEqual([first.apiKey.id, second.apiKey.id]);
    expect((await keys.list('u1'))[1].scopes).toEqual(['billing:read', 'knowledge:write']);
    expect(await keys.list('u3')).toEqual([]);
  });

  it('never grants a scope the caller lacks: admin only from an admin, and a key cannot raise itself', async () => {
    const refused = await rejection(keys.create('u1', SESSION_SCOPES, 'root', ['admin']));
    expect(refused.extensions).toMatchObject({ code: 'FORBIDDEN', missingScopes: ['admin'] });
    expect(refused.message).toContain('missing admin');

    const fromKey = await rejection(keys.create('u1', ['knowledge:read'], 'wider', ['knowledge:read', 'knowledge:write']));
    expect(fromKey.extensions).toMatchObject({ code: 'FORBIDDEN', missingScopes: ['knowledge:write'] });

    const admin = await keys.create('u1', [...SESSION_SCOPES, 'admin'], 'ops', ['admin']);
    expect(admin.apiKey.scopes).toEqual(['admin']);
    expect(await keys.list('u1')).toHaveLength(1);
  });

  it('refuses an empty or unknown scope list and a blank name with BAD_USER_INPUT naming the field', async () => {
    expect((await rejection(keys.create('u1', SESSION_SCOPES, 'x', []))).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'scopes' });
    expect((await rejection(keys.create('u1', SESSION_SCOPES, 'x', ['root']))).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'scopes' });
    expect((await rejection(keys.create('u1', SESSION_SCOPES, '   ', ['billing:read']))).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'name' });
  });

  it('verifies a secret to its key, and refuses malformed, wrong-prefix, unknown and revoked ones alike', async () => {
    const { secret, apiKey } = await keys.create('u1', SESSION_SCOPES, 'k', ['inference:invoke']);
    expect(await keys.verify(secret)).toMatchObject({ id: apiKey.id, userId: 'u1', scopes: ['inference:invoke'] });
    expect(await keys.verify(secret.slice(0, -1))).toBeNull();
    expect(await keys.verify(`pk-${secret.slice(3)}`)).toBeNull();
    expect(await keys.verify(`sk-${'A'.repeat(43)}`)).toBeNull();
    await keys.revoke('u1', apiKey.id);
    expect(await keys.verify(secret)).toBeNull();
  });

  it('records lastUsedAt at most once a minute', async () => {
    const { secret, apiKey } = await keys.create('u1', SESSION_SCOPES, 'k', ['inference:invoke']);
    const t0 = now;
    expect((await keys.verify(secret))!.lastUsedAt).toEqual(t0);
    now = new Date(t0.getTime() + 30_000);
    expect((await keys.verify(secret))!.lastUsedAt).toEqual(t0);
    now = new Date(t0.getTime() + 61_000);
    expect((await keys.verify(secret))!.lastUsedAt).toEqual(now);
    expect((await keys.list('u1')).find((k) => k.id === apiKey.id)!.lastUsedAt).toEqual(now);
  });

  it("revokes only the owner's key: another user's id and an unknown id get the same NOT_FOUND and change nothing", async () => {
    const { secret, apiKey } = await keys.create('u1', SESSION_SCOPES, 'k', ['inference:invoke']);
    const other = await rejection(keys.revoke('u2', apiKey.id));
    const unknown = await rejection(keys.revoke('u2', 'no-such-key'));
    expect(other.extensions!.code).toBe('NOT_FOUND');
    expect(unknown.extensions!.code).toBe('NOT_FOUND');
    expect(other.message.replace(apiKey.id, 'ID')).toBe(unknown.message.replace('no-such-key', 'ID'));
    expect(await keys.verify(secret)).not.toBeNull();

    now = new Date(now.getTime() + 5000);
    const revoked = await keys.revoke('u1', apiKey.id);
    expect(revoked.revokedAt).toEqual(now);
    now = new Date(now.getTime() + 5000);
    expect((await keys.revoke('u1', apiKey.id)).revokedAt).toEqual(revoked.revokedAt);
    expect((await keys.list('u1'))[0].revokedAt).toEqual(revoked.revokedAt);
  });
});
