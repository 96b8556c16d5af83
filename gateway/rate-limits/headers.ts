/**
 * The RateLimit header fields of the IETF httpapi draft ("RateLimit header
 * fields for HTTP", the -07 names): `RateLimit-Limit`, `RateLimit-Remaining`,
 * `RateLimit-Reset` (seconds), with `RateLimit-Policy` naming the window, and
 * `Retry-After` on a refusal. They describe the caller's tightest limit.
 */
import type { GraphQLError } from 'graphql';
import { ErrorCode } from '../../lib/errors';
import type { Quota } from './limiter';
import { WINDOW_SECONDS } from './stores';

export function rateLimitHeaders(quota: Quota | undefined, retryAfter?: number): Record<string, string> {
  const headers: Record<string, string> = {};
  if (quota) {
    headers['ratelimit-limit'] = String(quota.limit);
    headers['ratelimit-remaining'] = String(quota.remaining);
    headers['ratelimit-reset'] = String(quota.resetSeconds);
    if (quota.kind !== 'streams') headers['ratelimit-policy'] = `${quota.limit};w=${WINDOW_SECONDS};comment="${quota.kind} per ${quota.scope}"`;
  }
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  return headers;
}

/** The headers of a refusal known only by its errors (a refused subscription): from the RATE_LIMITED error's extensions. */
export function refusalHeaders(errors: readonly GraphQLError[]): Record<string, string> {
  const limited = errors.find((e) => e.extensions.code === ErrorCode.RateLimited)?.extensions;
  if (!limited || typeof limited.limit !== 'number') return {};
  const retryAfter = typeof limited.retryAfter === 'number' ? limited.retryAfter : undefined;
  const headers: Record<string, string> = { 'ratelimit-limit': String(limited.limit), 'ratelimit-remaining': String(typeof limited.remaining === 'number' ? limited.remaining : 0) };
  if (retryAfter !== undefined) headers['ratelimit-reset'] = headers['retry-after'] = String(retryAfter);
  return headers;
}
