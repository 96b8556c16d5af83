/**
 * Enforces the supergraph's `@authenticated`/`@requiresScopes` on every
 * operation Apollo Server runs (HTTP, and queries and mutations over
 * WebSocket), between validation and planning:
 *
 * - `didResolveOperation` filters the validated document and swaps it in,
 *   with a `queryHash` of its own: @apollo/gateway caches query plans by
 *   that hash, and callers with different scopes must not share a plan;
 * - `responseForOperation` answers without execution when nothing is left;
 * - `willSendResponse` puts the removed fields' nulls and errors back.
 */
import { createHash } from 'node:crypto';
import type { ApolloServerPlugin } from '@apollo/server';
import { print, type DocumentNode } from 'graphql';
import type { GatewayContext } from '../context';
import { filterOperation, type FilteredOperation } from './filter';
import type { AuthorizationPolicy } from './policy';
import { completeResult } from './response';

export function authorizationPlugin(policy: AuthorizationPolicy): ApolloServerPlugin<GatewayContext> {
  return {
    async requestDidStart() {
      let filtered: FilteredOperation | undefined;
      return {
        async didResolveOperation(requestContext) {
          const { claims } = requestContext.contextValue.identity;
          const result = filterOperation(policy, requestContext.schema, requestContext.document, requestContext.operationName, claims);
          if (!result.changed) return;
          filtered = result;
          // Apollo Server types these as read-only for other plugins; replacing them here, before execution, is what lets the gateway plan only what is allowed.
          const writable = requestContext as { document: DocumentNode; queryHash: string };
          writable.document = result.document;
          writable.queryHash = createHash('sha256').update(print(result.document)).digest('hex');
        },
        async responseForOperation(requestContext) {
          if (!filtered?.empty) return null;
          const { claims } = requestContext.contextValue.identity;
          return { http: requestContext.response.http, body: { kind: 'single', singleResult: completeResult(filtered, claims, {}) } };
        },
        async willSendResponse(requestContext) {
          if (!filtered || filtered.empty) return;
          const { claims } = requestContext.contextValue.identity;
          const { body } = requestContext.response;
          if (body.kind === 'single') body.singleResult = completeResult(filtered, claims, body.singleResult);
          else body.initialResult = completeResult(filtered, claims, body.initialResult);
        },
      };
    },
  };
}
