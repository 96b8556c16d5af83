import type Redis from 'ioredis';
import { isScope, type Scope } from './scopes';

export interface ApiKey {
  id: string;
  userId: string;
  name: string;
  scopes: Scope[];
  /** The first characters of the secret, so its owner can tell keys apart; never enough to use it. */
  prefix: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface StoredApiKey extends ApiKey {
  /** SHA-256 of the secret, hex. The secret itself is never stored. */
  secretHash: string;
}

/**
 * Marks the key revoked, only for its owner (0 otherwise, as for an unknown
 * id). Revoking twice keeps the first revocation time. A revoked record stops
 * its secret at once (verification checks `revokedAt`); the secret-hash index
 * entry is dropped after, in a step of its own (another Cluster slot).
 */
const REVOKE = `
if redis.call('HGET', KEYS[1], 'userId') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'secretHash') ~= ARGV[2] then return 0 end
if not redis.call('HGET', KEYS[1], 'revokedAt') then redis.call('HSET', KEYS[1], 'revokedAt', ARGV[3]) end
return 1
`;

/** Records a use unless one was recorded less than ARGV[2] ms ago, or the key is gone or revoked. */
const TOUCH = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'revokedAt') then return 0 end
local last = tonumber(redis.call('HGET', KEYS[1], 'lastUsedAt') or '0')
if tonumber(ARGV[1]) - last < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'lastUsedAt', ARGV[1])
return 1
`;

/**
 * API keys in Redis under `auth:`. The record, the owner's index and the
 * secret-hash index are in different Redis Cluster slots, so they are written
 * in steps ordered so that a crash between two never leaves a usable key its
 * owner cannot see: the record, then the owner's index, then (last, making the
 * secret usable) the hash index. A crash before the last step leaves a listed
 * key whose secret was never handed out and does not resolve.
 */
export class ApiKeyStore {
  constructor(private readonly redis: Redis) {}

  /** False (and nothing kept) when the secret hash is already indexed: 32 random bytes make that a bug, not bad luck. */
  async create(key: StoredApiKey): Promise<boolean> {
    const createdAt = String(key.createdAt.getTime());
    await this.redis.hset(recordKey(key.id), { id: key.id, userId: key.userId, name: key.name, scopes: JSON.stringify(key.scopes), prefix: key.prefix, secretHash: key.secretHash, createdAt });
    await this.redis.zadd(userIndexKey(key.userId), createdAt, key.id);
    if ((await this.redis.set(hashIndexKey(key.secretHash), key.id, 'NX')) === 'OK') return true;
    await this.redis.zrem(userIndexKey(key.userId), key.id);
    await this.redis.del(recordKey(key.id));
    return false;
  }

  /** The user's keys, oldest first, revoked ones included. */
  async listByUser(userId: string): Promise<ApiKey[]> {
    const ids = await this.redis.zrange(userIndexKey(userId), 0, -1);
    const keys = await Promise.all(ids.map((id) => this.byId(id)));
    return keys.filter((key): key is StoredApiKey => key !== null).map(withoutHash);
  }

  async byId(id: string): Promise<StoredApiKey | null> {
    return parse(await this.redis.hgetall(recordKey(id)));
  }

  async idBySecretHash(secretHash: string): Promise<string | null> {
    return this.redis.get(hashIndexKey(secretHash));
  }

  /** The revoked key, or null when it does not exist or belongs to someone else. */
  async revoke(id: string, userId: string, now: Date): Promise<ApiKey | null> {
    const stored = await this.byId(id);
    if (!stored || stored.userId !== userId) return null;
    const revoked = await this.redis.eval(REVOKE, 1, recordKey(id), userId, stored.secretHash, String(now.getTime()));
    if (revoked !== 1) return null;
    await this.redis.del(hashIndexKey(stored.secretHash));
    const after = await this.byId(id);
    return after && withoutHash(after);
  }

  /** Sets `lastUsedAt` unless it was set less than `minIntervalMs` ago; true when it wrote. */
  async touch(id: string, now: Date, minIntervalMs: number): Promise<boolean> {
    return (await this.redis.eval(TOUCH, 1, recordKey(id), String(now.getTime()), String(minIntervalMs))) === 1;
  }
}

function parse(hash: Record<string, string>): StoredApiKey | null {
  if (!hash.id) return null;
  const scopes = (JSON.parse(hash.scopes) as string[]).filter(isScope);
  return {
    id: hash.id,
    userId: hash.userId,
    name: hash.name,
    scopes,
    prefix: hash.prefix,
    secretHash: hash.secretHash,
    createdAt: new Date(Number(hash.createdAt)),
    lastUsedAt: hash.lastUsedAt ? new Date(Number(hash.lastUsedAt)) : null,
    revokedAt: hash.revokedAt ? new Date(Number(hash.revokedAt)) : null,
  };
}

export function withoutHash({ secretHash: _secretHash, ...key }: StoredApiKey): ApiKey {
  return key;
}

const recordKey = (id: string) => `auth:api-key:${id}`;
const userIndexKey = (userId: string) => `auth:user-api-keys:${userId}`;
const hashIndexKey = (secretHash: string) => `auth:api-key-hash:${secretHash}`;
