/** The rate limiter's configuration from the environment (README, "Configuration"). */
import { ConfigError, type Env } from '../../lib/config';
import type { OnRedisError, RateLimiterOptions } from './limiter';
import { RatePlans } from './plans';

export function rateLimitsFromEnv(env: Env): RateLimiterOptions {
  // Streams were limited per process by this variable before; it stays the default plan's `streams`.
  const streams = env.int('GATEWAY_SUBSCRIPTIONS_PER_USER', 32, { min: 1 });
  const text = env.string('GATEWAY_RATE_LIMITS');
  const onRedisError = env.string('GATEWAY_RATE_LIMIT_ON_REDIS_ERROR', 'open');
  if (onRedisError !== 'open' && onRedisError !== 'closed') {
    throw new ConfigError(
      `GATEWAY_RATE_LIMIT_ON_REDIS_ERROR expects "open" (limit in each process while Redis is away) or "closed" (refuse with SERVICE_UNAVAILABLE), but got ${JSON.stringify(onRedisError)}`,
    );
  }
  return {
    plans: text === undefined ? RatePlans.unlimited(streams) : RatePlans.parse(text, streams),
    onRedisError: onRedisError as OnRedisError,
    redisTimeoutMs: env.int('GATEWAY_RATE_LIMIT_REDIS_TIMEOUT_MS', 1_000, { min: 1 }),
    leaseMs: env.int('GATEWAY_RATE_LIMIT_STREAM_LEASE_MS', 30_000, { min: 1_000 }),
  };
}
