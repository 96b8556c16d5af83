/**
 * The response cache (issue 7): a query whose overall cache policy allows it
 * (every subgraph fetch answered with `Cache-Control: max-age=N`, which each
 * subgraph's Apollo Server computes from its `@cacheControl` hints and
 * @apollo/gateway folds into the request's policy) is stored whole in Redis
 * for the policy's max-age, and the same query with the same variables is
 * answered from there, by any gateway process, without planning or fetching.
 * PRIVATE responses are stored per user and served to that user only.
 * Mutations, subscriptions, responses with any error and partial or deferred
 * responses are never stored. Every response says what happened in
 * `x-cache`: HIT, MISS (looked up, not found; stored if cacheable) or BYPASS
 * (not a cacheable kind of operation, refused before execution, or a
 * document whose answer in the last minute was not cacheable).
 */
import type { Env } from '../../lib/config';
import type { GatewayFeature } from '../pipeline/feature';
import { StateKey, wasNarrowed } from '../pipeline/operation-state';
import { serializedResults } from '../pipeline/serialized-results';
import type { EntryKeys, ResponseCacheStore } from './store';
import { remember } from '../../lib/bounded-map';

export const CACHE_STATUS_HEADER = 'x-cache';

export interface ResponseCacheOptions {
  /** Responses larger than this, serialized, in bytes, are not stored (GATEWAY_RESPONSE_CACHE_MAX_ENTRY_BYTES). @default 524288 */
  maxEntryBytes: number;
}

/** The response cache's settings, or undefined when GATEWAY_RESPONSE_CACHE is off. @default on */
export function responseCacheFromEnv(env: Env): ResponseCacheOptions | undefined {
  if (!env.bool('GATEWAY_RESPONSE_CACHE', true)) return undefined;
  return { maxEntryBytes: env.int('GATEWAY_RESPONSE_CACHE_MAX_ENTRY_BYTES', 512 * 1024, { min: 1024 }) };
}

/** How long a document whose answer could not be cached skips the look-up, and how many such documents are remembered. */
const UNCACHEABLE_MS = 60_000;
const MAX_UNCACHEABLE = 1_000;

interface Lookup {
  status: 'HIT' | 'MISS';
  keys: EntryKeys;
}

/** What the look-up found; an operation without one was not looked up (BYPASS). */
const LOOKUP = new StateKey<Lookup>('response cache');

/** HTTP (and WebSocket queries) only: subscriptions are never cached. After authorization, whose document and hash the entries are keyed by. */
export function responseCache(store: ResponseCacheStore, options: ResponseCacheOptions): GatewayFeature {
  // Documents whose last answer carried no cacheable policy (a field without a max-age), by query hash: their
  // look-ups would only miss, at a Redis round trip each, so they bypass the cache for a while, then are tried again.
  const uncacheable = new Map<string, number>();
  return {
    name: 'response cache',
    async responseForOperation(operation, requestContext) {
      if (requestContext.operation?.operation !== 'query' || !requestContext.queryHash) return null;
      const skipUntil = uncacheable.get(requestContext.queryHash);
      if (skipUntil !== undefined && skipUntil > Date.now()) return null;
      const keys = store.keysFor({
        queryHash: requestContext.queryHash,
        operationName: requestContext.operationName,
        variables: requestContext.request.variables,
        user: operation.context.identity.claims.sub ?? null,
      });
      const cached = await store.lookup(keys);
      operation.set(LOOKUP, { status: cached ? 'HIT' : 'MISS', keys });
      if (!cached) return null;
      // Apollo's cache-control plugin then tells the client what is left of the max-age, not the whole of it.
      requestContext.overallCachePolicy.replace({ maxAge: cached.remaining, scope: cached.scope });
      requestContext.response.http.headers.set('age', String(cached.age));
      // Sent as stored, unless authorization will complete it in place for this caller (a narrowed document).
      if (!wasNarrowed(requestContext.document)) serializedResults.adopt(cached.data, cached.dataJson);
      return { http: requestContext.response.http, body: { kind: 'single', singleResult: { data: cached.data } } };
    },
    async responseWillSend(operation, requestContext) {
      const lookup = operation.get(LOOKUP);
      requestContext.response.http.headers.set(CACHE_STATUS_HEADER, lookup?.status ?? 'BYPASS');
      if (lookup?.status !== 'MISS') return;
      const { body } = requestContext.response;
      if (body.kind !== 'single' || body.singleResult.errors?.length || !body.singleResult.data) return;
      const policy = requestContext.overallCachePolicy.policyIfCacheable();
      if (!policy) {
        if (requestContext.queryHash) {
          remember(uncacheable, requestContext.queryHash, Date.now() + UNCACHEABLE_MS, MAX_UNCACHEABLE);
        }
        return;
      }
      // Awaited (one SET, only for a cacheable miss) so that a client's next request finds what this one stored.
      await store.save(lookup.keys, policy, serializedResults.dataJson(body.singleResult.data), options.maxEntryBytes);
    },
  };
}
