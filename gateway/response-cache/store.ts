/**
 * Whole responses in Redis, each for as long as its cache policy allows.
 * Keys: `gw:rc:{<sha256 of query hash, operation name and variables>}` for a
 * PUBLIC response, the same plus `:user:<sub>` for a PRIVATE one, which only
 * that user's requests ever read. The query hash is the one the operation
 * runs under: the authorization filter gives a filtered document a hash of
 * its own, so callers who may see different fields never share an entry.
 * Variables are keyed as sent: the same values in another key order make
 * another entry (a miss, never a wrong hit).
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import { redisIsConnected } from '../../lib/redis-key-value-cache';

export type CacheScope = 'PUBLIC' | 'PRIVATE';

export interface CacheKeyParts {
  queryHash: string;
  operationName: string | null;
  variables: Record<string, unknown> | undefined;
  /** The caller's user id, or null for an anonymous caller (whose PRIVATE responses are not cached). */
  user: string | null;
}

/** The two keys a request may be answered from. */
export interface EntryKeys {
  public: string;
  private?: string;
}

export interface CachedResponse {
  data: Record<string, unknown>;
  scope: CacheScope;
  /** Whole seconds since it was stored. */
  age: number;
  /** Whole seconds it may still be served (at least 1 while it exists). */
  remaining: number;
}

interface Entry {
  /** data */
  d: Record<string, unknown>;
  /** scope */
  s: CacheScope;
  /** max-age, seconds */
  m: number;
  /** stored at, ms since the epoch */
  t: number;
}

export class ResponseCacheStore {
  constructor(
    private readonly redis: Redis,
    private readonly onError: (operation: 'lookup' | 'save', error: Error) => void = () => {},
    private readonly prefix = 'gw:rc:',
  ) {}

  keysFor(parts: CacheKeyParts): EntryKeys {
    // The hash is the Cluster hash tag: an entry's public and private keys share a slot, so one MGET reads both.
    const base = `${this.prefix}{${createHash('sha256')
      .update(JSON.stringify([parts.queryHash, parts.operationName, parts.variables ?? {}]))
      .digest('hex')}}`;
    return parts.user ? { public: base, private: `${base}:user:${parts.user}` } : { public: base };
  }

  /** The caller's entry (their own PRIVATE one first), or undefined; never throws. */
  async lookup(keys: EntryKeys, now = Date.now()): Promise<CachedResponse | undefined> {
    if (!redisIsConnected(this.redis)) return undefined;
    let entry: Entry;
    try {
      const values = keys.private ? await this.redis.mget(keys.private, keys.public) : [await this.redis.get(keys.public)];
      const value = values.find((v): v is string => v !== null);
      if (value === undefined) return undefined;
      entry = JSON.parse(value) as Entry;
    } catch (error) {
      this.onError('lookup', error as Error);
      return undefined;
    }
    const age = Math.max(0, Math.floor((now - entry.t) / 1000));
    return { data: entry.d, scope: entry.s, age, remaining: Math.max(1, entry.m - age) };
  }

  /**
   * Stores a response for `maxAge` seconds under the key its scope allows;
   * false (and nothing stored) for a PRIVATE response to an anonymous caller
   * or one larger than `maxBytes`. Never throws.
   */
  async save(keys: EntryKeys, policy: { maxAge: number; scope: CacheScope }, data: Record<string, unknown>, maxBytes: number, now = Date.now()): Promise<boolean> {
    const key = policy.scope === 'PUBLIC' ? keys.public : keys.private;
    if (!key || !redisIsConnected(this.redis)) return false;
    const value = JSON.stringify({ d: data, s: policy.scope, m: policy.maxAge, t: now } satisfies Entry);
    if (Buffer.byteLength(value) > maxBytes) return false;
    try {
      await this.redis.set(key, value, 'PX', policy.maxAge * 1000);
      return true;
    } catch (error) {
      this.onError('save', error as Error);
      return false;
    }
  }
}
