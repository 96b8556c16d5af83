import type { PersistedQueryOptions } from '@apollo/server';
import type Redis from 'ioredis';

/** Apollo Server's own `KeyValueCache` (its copy of @apollo/utils.keyvaluecache, not the gateway's older one). */
type KeyValueCache = NonNullable<PersistedQueryOptions['cache']>;
type KeyValueCacheSetOptions = Parameters<KeyValueCache['set']>[2];

/**
 * Apollo's `KeyValueCache` over ioredis, every key under `prefix`, so caches
 * Apollo Server keeps per process (automatic persisted queries) are shared by
 * every process and replica. A cache must never fail a request: while Redis
 * is away, reads miss and writes are dropped at once (not queued until the
 * reconnection), and each failure is reported to `onError`.
 */
export class RedisKeyValueCache implements KeyValueCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly onError: (operation: 'get' | 'set' | 'delete', error: Error) => void = () => {},
  ) {}

  async get(key: string): Promise<string | undefined> {
    if (!redisIsConnected(this.redis)) return undefined;
    try {
      return (await this.redis.get(this.prefix + key)) ?? undefined;
    } catch (error) {
      this.onError('get', error as Error);
      return undefined;
    }
  }

  /** `ttl` in seconds, as Apollo passes it; none or null keeps the value until Redis evicts it. */
  async set(key: string, value: string, options?: KeyValueCacheSetOptions): Promise<void> {
    if (!redisIsConnected(this.redis)) return;
    try {
      const ttl = options?.ttl;
      if (ttl) await this.redis.set(this.prefix + key, value, 'PX', Math.ceil(ttl * 1000));
      else await this.redis.set(this.prefix + key, value);
    } catch (error) {
      this.onError('set', error as Error);
    }
  }

  async delete(key: string): Promise<boolean> {
    if (!redisIsConnected(this.redis)) return false;
    try {
      return (await this.redis.del(this.prefix + key)) > 0;
    } catch (error) {
      this.onError('delete', error as Error);
      return false;
    }
  }
}

/**
 * True when a command would be sent now rather than queued for a
 * reconnection. ioredis-mock (`memory://`) has no connection and no status.
 */
export function redisIsConnected(redis: Redis): boolean {
  const status: string | undefined = redis.status;
  return status === undefined || status === 'ready';
}
