/**
 * Automatic persisted queries (Apollo's APQ protocol), served by Apollo
 * Server itself: a request may carry `extensions.persistedQuery { version: 1,
 * sha256Hash }` instead of its document; an unknown hash gets
 * PERSISTED_QUERY_NOT_FOUND and the client sends the document once more with
 * the hash, which registers it. The registered documents live in Redis under
 * `gw:apq:<sha256>`, so one registration serves every gateway process and
 * replica.
 */
import type { PersistedQueryOptions } from '@apollo/server';
import type Redis from 'ioredis';
import { remember } from '../../lib/bounded-map';
import type { Env } from '../../lib/config';
import type { Logger } from '../../lib/log';
import { RedisKeyValueCache } from '../../lib/redis-key-value-cache';

export interface ApqSettings {
  /** How long a registered document is kept after its last registration, in seconds (GATEWAY_APQ_TTL_SECONDS). @default 86400 */
  ttlSeconds: number;
}

/** APQ's settings, or undefined when GATEWAY_APQ is off. @default on */
export function apqSettingsFromEnv(env: Env): ApqSettings | undefined {
  if (!env.bool('GATEWAY_APQ', true)) return undefined;
  return { ttlSeconds: env.int('GATEWAY_APQ_TTL_SECONDS', 86_400, { min: 1 }) };
}

/** The gateway's APQ options for Apollo Server (it adds the `apq:` part of the key itself), or false when turned off. */
export function persistedQueryOptions(settings: ApqSettings | undefined, redis: Redis, log: Logger): PersistedQueryOptions | false {
  if (!settings) return false;
  const shared = new RedisKeyValueCache(redis, 'gw:', (operation, error) => log.warn('persisted query cache unavailable', { operation, error: error.message }));
  return { cache: new RememberedDocuments(shared, settings.ttlSeconds * 1000), ttl: settings.ttlSeconds };
}

type KeyValueCache = NonNullable<PersistedQueryOptions['cache']>;

/** Documents remembered in this process: a client sends the same few hashes again and again. */
const MAX_REMEMBERED_DOCUMENTS = 1_000;
/** Longest document remembered, in characters: 1,000 of them hold at most 16 MiB; longer ones are read from Redis each time. */
const MAX_REMEMBERED_CHARS = 16 * 1024;

/**
 * The shared store with the documents this process has read or registered
 * remembered in front of it, so a request by hash does not wait for a Redis
 * GET: a hash names one document for ever (Apollo Server checks the hash of
 * what it registers), so a remembered one cannot be out of date. Each is
 * forgotten `ttlMs` after this process registered it or read it from Redis
 * (Redis forgets it `ttl` after its last registration); writes always go to
 * Redis, which every process and replica reads.
 */
export class RememberedDocuments implements KeyValueCache {
  private readonly documents = new Map<string, { value: string; until: number }>();

  constructor(
    private readonly shared: KeyValueCache,
    private readonly ttlMs: number,
    private readonly now: () => number = performance.now.bind(performance),
  ) {}

  async get(key: string): Promise<string | undefined> {
    const known = this.documents.get(key);
    if (known && known.until > this.now()) return known.value;
    const value = await this.shared.get(key);
    this.remember(key, value);
    return value;
  }

  async set(key: string, value: string, options?: Parameters<KeyValueCache['set']>[2]): Promise<void> {
    this.remember(key, value);
    await this.shared.set(key, value, options);
  }

  delete(key: string): ReturnType<KeyValueCache['delete']> {
    this.documents.delete(key);
    return this.shared.delete(key);
  }

  private remember(key: string, value: string | undefined): void {
    if (value === undefined || value.length > MAX_REMEMBERED_CHARS) this.documents.delete(key);
    else remember(this.documents, key, { value, until: this.now() + this.ttlMs }, MAX_REMEMBERED_DOCUMENTS);
  }
}
