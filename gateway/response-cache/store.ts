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
  /** `data` as it was stored, JSON: the response sends these characters instead of serializing `data` again. */
  dataJson: string;
  scope: CacheScope;
  /** Whole seconds since it was stored. */
  age: number;
  /** Whole seconds it may still be served (at least 1 while it exists). */
  remaining: number;
}

/** An entry is `{"s":…,"m":…,"t":…,"d":…}`, the data last, so its JSON is the text between `"d":` and the closing brace. */
interface Entry {
  /** scope */
  s: CacheScope;
  /** max-age, seconds */
  m: number;
  /** stored at, ms since the epoch */
  t: number;
  /** data */
  d: Record<string, unknown>;
}

const DATA_FIELD = '"d":';

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
    let value: string | undefined;
    try {
      const values = keys.private ? await this.redis.mget(keys.private, keys.public) : [await this.redis.get(keys.public)];
      value = values.find((v): v is string => v !== null);
      if (value === undefined) return undefined;
      entry = JSON.parse(value) as Entry;
    } catch (error) {
      this.onError('lookup', error as Error);
      return undefined;
    }
    const age = Math.max(0, Math.floor((now - entry.t) / 1000));
    // An entry from a gateway that stored the data first (until it expires) is serialized again.
    const dataJson = value.startsWith('{"s":') ? value.slice(value.indexOf(DATA_FIELD) + DATA_FIELD.length, -1) : JSON.stringify(entry.d);
    return { data: entry.d, dataJson, scope: entry.s, age, remaining: Math.max(1, entry.m - age) };
  }

  /**
   * Stores a response's data (`dataJson`, its JSON) for `maxAge` seconds under the key its scope allows;
   * false (and nothing stored) for a PRIVATE response to an anonymous caller
   * or one larger than `maxBytes`. Never throws.
   */
  async save(keys: EntryKeys, policy: { maxAge: number; scope: CacheScope }, dataJson: string, maxBytes: number, now = Date.now()): Promise<boolean> {
    const key = policy.scope === 'PUBLIC' ? keys.public : keys.private;
    if (!key || !redisIsConnected(this.redis)) return false;
    // The data's JSON as the response sends it (serialized once), written in, not serialized again.
    const value = `${JSON.stringify({ s: policy.scope, m: policy.maxAge, t: now }).slice(0, -1)},${DATA_FIELD}${dataJson}}`;
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
