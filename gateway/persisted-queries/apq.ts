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
import { envBool, envInt } from '../../lib/config';
import type { Logger } from '../../lib/log';
import { RedisKeyValueCache } from '../../lib/redis-key-value-cache';

/** The gateway's APQ settings for Apollo Server (it adds the `apq:` part of the key itself), or false when turned off. */
export function persistedQueriesFromEnv(redis: Redis, log: Logger): PersistedQueryOptions | false {
  if (!envBool('GATEWAY_APQ', true)) return false;
  return {
    cache: new RedisKeyValueCache(redis, 'gw:', (operation, error) => log.warn('persisted query cache unavailable', { operation, error: error.message })),
    ttl: envInt('GATEWAY_APQ_TTL_SECONDS', 86_400, { min: 1 }),
  };
}
