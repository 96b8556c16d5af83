/**
 * OpenAI's rate-limit headers (`x-ratelimit-limit-requests`,
 * `x-ratelimit-remaining-tokens`, `x-ratelimit-reset-requests`, …) from the
 * gateway limiter's numbers: on a refusal, the RATE_LIMITED error's
 * extensions (`kind`, `limit`, `remaining`, `retryAfter`); on an answer, the
 * RateLimit headers the rate-limit feature put on it. The limiter reports
 * the caller's tightest limit only, so one of the two families (requests or
 * tokens) is sent. `Retry-After` goes with any error that says when to retry
 * (a rate limit, a model loading, a subgraph's open circuit).
 */

/** OpenAI's word for the limiter's kind: tokens per minute, or requests (per minute, per IP, live streams). */
const family = (kind: unknown) => (kind === 'tpm' ? 'tokens' : 'requests');

export function openAiRateLimitHeaders(extensions: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = {};
  const retryAfter = typeof extensions.retryAfter === 'number' ? extensions.retryAfter : undefined;
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  if (typeof extensions.limit === 'number' && typeof extensions.kind === 'string') {
    const name = family(extensions.kind);
    headers[`x-ratelimit-limit-${name}`] = String(extensions.limit);
    headers[`x-ratelimit-remaining-${name}`] = String(typeof extensions.remaining === 'number' ? extensions.remaining : 0);
    if (retryAfter !== undefined) headers[`x-ratelimit-reset-${name}`] = `${retryAfter}s`;
  }
  return headers;
}

/** The same headers from an admitted answer's `RateLimit-*` headers (none when the caller has no limit). */
export function openAiQuotaHeaders(headers: { get(name: string): string | undefined }): Record<string, string> {
  const limit = headers.get('ratelimit-limit');
  if (limit === undefined) return {};
  const kind = /comment="(\S+) per /.exec(headers.get('ratelimit-policy') ?? '')?.[1];
  const name = family(kind);
  return {
    [`x-ratelimit-limit-${name}`]: limit,
    [`x-ratelimit-remaining-${name}`]: headers.get('ratelimit-remaining') ?? '0',
    [`x-ratelimit-reset-${name}`]: `${headers.get('ratelimit-reset') ?? '0'}s`,
  };
}
