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
  return {
    cache: new RedisKeyValueCache(redis, 'gw:', (operation, error) => log.warn('persisted query cache unavailable', { operation, error: error.message })),
    ttl: settings.ttlSeconds,
  };
}
