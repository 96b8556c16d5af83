/**
 * The RateLimit header fields of the IETF httpapi draft ("RateLimit header
 * fields for HTTP", the -07 names): `RateLimit-Limit`, `RateLimit-Remaining`,
 * `RateLimit-Reset` (seconds), with `RateLimit-Policy` naming the window, and
 * `Retry-After` on a refusal. They describe the caller's tightest limit.
 */
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
