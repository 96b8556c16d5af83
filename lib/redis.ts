import Redis from 'ioredis';
import { envSecret, envString } from './config';
import type { Logger } from './log';

/**
 * `REDIS_URL=memory://` selects an in-process store with Redis semantics
 * (ioredis-mock, including Lua). Every connection made in one process shares
 * its data, which is why `npm start` runs all services in one process when it
 * has to fall back to it; nothing is kept when that process ends.
 */
export const IN_MEMORY_REDIS_URL = 'memory://';

/**
 * A connection to `url`, as the service's own ACL user when `REDIS_USERNAME`
 * and `REDIS_PASSWORD` (or `REDIS_PASSWORD_FILE`) are set (they win over
 * credentials in the URL; see lib/redis-acl.ts).
 */
export function connectRedis(url: string, log: Logger): Redis {
  if (url === IN_MEMORY_REDIS_URL) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const RedisMock = require('ioredis-mock') as typeof Redis;
    return new RedisMock();
  }
  const username = envString('REDIS_USERNAME');
  const password = envSecret('REDIS_PASSWORD')?.trim();
  const client = new Redis(url, {
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    lazyConnect: false,
    // Commands issued while Redis is away wait for the reconnection instead of
    // failing at once, but not forever: a GraphQL request gets an error, not a hang.
    maxRetriesPerRequest: 3,
    enableOfflineQueue: true,
    // Commands issued in the same tick (many concurrent requests' look-ups)
    // go out in one write: per-command writes were a large share of every
    // service's CPU under load. Order on the connection is unchanged.
    enableAutoPipelining: true,
  });
  let lastError = '';
  client.on('error', (error: Error) => {
    if (error.message !== lastError) log.warn('redis error', { error: error.message });
    lastError = error.message;
  });
  client.on('ready', () => {
    if (lastError) log.info('redis reconnected');
    lastError = '';
  });
  return client;
}

/** True once the connection answers PING; used by readiness checks. */
export async function redisIsReady(client: Redis, timeoutMs = 1_000): Promise<boolean> {
  // A PING waits in the offline queue while Redis is away: a readiness probe must answer "no" in time, not hang.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([client.ping().then((reply) => reply === 'PONG'), timedOut]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
