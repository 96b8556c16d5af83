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
import type { ApolloServerPlugin } from '@apollo/server';
import { envBool, envInt } from '../../lib/config';
import type { GatewayContext } from '../auth/context';
import type { EntryKeys, ResponseCacheStore } from './store';
import { remember } from '../../lib/bounded-map';

export const CACHE_STATUS_HEADER = 'x-cache';

export interface ResponseCacheOptions {
  /** Responses larger than this (serialized) are not stored. */
  maxEntryBytes: number;
}

/** The response cache's settings, or undefined when GATEWAY_RESPONSE_CACHE is off. */
export function responseCacheFromEnv(): ResponseCacheOptions | undefined {
  if (!envBool('GATEWAY_RESPONSE_CACHE', true)) return undefined;
  return { maxEntryBytes: envInt('GATEWAY_RESPONSE_CACHE_MAX_ENTRY_BYTES', 512 * 1024, { min: 1024 }) };
}

/** How long a document whose answer could not be cached skips the look-up, and how many such documents are remembered. */
const UNCACHEABLE_MS = 60_000;
const MAX_UNCACHEABLE = 1_000;

export function responseCachePlugin(store: ResponseCacheStore, options: ResponseCacheOptions): ApolloServerPlugin<GatewayContext> {
  // Documents whose last answer carried no cacheable policy (a field without a max-age), by query hash: their
  // look-ups would only miss, at a Redis round trip each, so they bypass the cache for a while, then are tried again.
  const uncacheable = new Map<string, number>();
  return {
    async requestDidStart() {
      let status: 'HIT' | 'MISS' | 'BYPASS' = 'BYPASS';
      let keys: EntryKeys | undefined;
      return {
        // Runs after didResolveOperation: the authorization filter has already swapped in its document and hash.
        async responseForOperation(requestContext) {
          if (requestContext.operation?.operation !== 'query' || !requestContext.queryHash) return null;
          const skipUntil = uncacheable.get(requestContext.queryHash);
          if (skipUntil !== undefined && skipUntil > Date.now()) return null;
          keys = store.keysFor({
            queryHash: requestContext.queryHash,
            operationName: requestContext.operationName,
            variables: requestContext.request.variables,
            user: requestContext.contextValue.identity.claims.sub ?? null,
          });
          const cached = await store.lookup(keys);
          if (!cached) {
            status = 'MISS';
            return null;
          }
          status = 'HIT';
          // Apollo's cache-control plugin then tells the client what is left of the max-age, not the whole of it.
          requestContext.overallCachePolicy.replace({ maxAge: cached.remaining, scope: cached.scope });
          requestContext.response.http.headers.set('age', String(cached.age));
          return { http: requestContext.response.http, body: { kind: 'single', singleResult: { data: cached.data } } };
        },
        async willSendResponse(requestContext) {
          requestContext.response.http.headers.set(CACHE_STATUS_HEADER, status);
          if (status !== 'MISS' || !keys) return;
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
          await store.save(keys, policy, body.singleResult.data, options.maxEntryBytes);
        },
      };
    },
  };
}
