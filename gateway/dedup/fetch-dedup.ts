/**
 * Deduplication of subgraph fetches: identical query fetches in flight at the
 * same time go out once and every caller gets its own copy of the one
 * response (as Apollo Router's traffic shaping does). Identical means the same
 * URL, body (query text, variables, operation name), caller claims and
 * request headers. The signed identity header differs by its signing time
 * even for one caller, so it is compared by the claims inside it; the request
 * id and trace context only label a request and never change its answer, so
 * the shared fetch carries the first caller's.
 */
import type { FetcherRequestInit } from '@apollo/utils.fetcher';
import { remember } from '../../lib/bounded-map';
import { IDENTITY_HEADER } from '../../lib/identity';
import type { BufferedResponse } from '../subgraph-calls/buffered-response';
import { dedupCounters } from './counters';
import { InFlight } from './in-flight';

/** Headers that label a request without changing its answer. */
const LABEL_HEADERS = new Set(['x-request-id', 'traceparent', 'tracestate', 'content-length']);
/** Identity headers whose claims are kept decoded: the gateway reuses one header per caller for half its lifetime. */
const DECODED_HEADERS = 10_000;

/**
 * The claims of a signed identity header without its issue and expiry times,
 * in a stable form. The header was signed by this gateway moments ago, so it
 * is decoded, not verified.
 */
export function callerClaims(identityHeader: string | undefined): string {
  if (!identityHeader) return '';
  const encoded = identityHeader.split('.')[1] ?? '';
  const { iat: _iat, exp: _exp, ...claims } = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as Record<string, unknown>;
  return JSON.stringify(claims, Object.keys(claims).sort());
}

export class FetchDedup {
  private readonly inFlight = new InFlight<BufferedResponse>();
  private readonly claims = new Map<string, string>();

  /** Sends through `send` unless an identical fetch is in flight, and gives this caller its own copy of the response. */
  async fetch(url: string, init: FetcherRequestInit, send: () => Promise<BufferedResponse>): Promise<BufferedResponse> {
    const { promise, shared } = this.inFlight.run(this.keyOf(url, init), send);
    if (shared) dedupCounters.deduplicatedFetches += 1;
    // The one response is never read itself: every caller reads a clone over its bytes.
    return (await promise).clone();
  }

  /**
   * What makes two fetches identical (see the module comment), one line per
   * part with the body last: no other part can hold a line break (HTTP
   * forbids them in header values), so no two different fetches share a key.
   */
  private keyOf(url: string, init: FetcherRequestInit): string {
    let identity = '';
    const headers: string[] = [];
    for (const [name, value] of Object.entries(init.headers ?? {})) {
      const lower = name.toLowerCase();
      if (lower === IDENTITY_HEADER) identity = this.claimsOf(value);
      else if (!LABEL_HEADERS.has(lower)) headers.push(`${lower}: ${value}`);
    }
    const body = typeof init.body === 'string' ? init.body : (init.body?.toString('utf8') ?? '');
    return `${init.method ?? 'GET'} ${url}\n${identity}\n${headers.sort().join('\n')}\n\n${body}`;
  }

  private claimsOf(header: string): string {
    const known = this.claims.get(header);
    if (known !== undefined) return known;
    const claims = callerClaims(header);
    remember(this.claims, header, claims, DECODED_HEADERS);
    return claims;
  }
}
