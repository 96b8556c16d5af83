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
import { DocumentMemo } from '../../../lib/document-memo';
import type { GatewayContext } from '../context';
import { filterOperation, type FilteredOperation } from './filter';
import type { AuthorizationPolicy } from './policy';
import { completeResult } from './response';

/** A filtered operation with the hash its plan is cached under. */
interface Filtering {
  filtered: FilteredOperation;
  queryHash: string | undefined;
}

export function authorizationPlugin(policy: AuthorizationPolicy): ApolloServerPlugin<GatewayContext> {
  // What is removed depends only on whether the caller is signed in and on their scopes: callers alike share one filtering.
  const filterings = new DocumentMemo<Filtering>();
  return {
    async requestDidStart() {
      let filtered: FilteredOperation | undefined;
      return {
        async didResolveOperation(requestContext) {
          const { claims } = requestContext.contextValue.identity;
          const { schema, document, operationName } = requestContext;
          const caller = `${operationName ?? ''}\n${claims.sub ? 'signed in' : 'anonymous'}\n${[...claims.scopes].sort().join(' ')}`;
          const filtering = filterings.get(schema, document, caller, () => {
            const result = filterOperation(policy, schema, document, operationName, claims);
            return { filtered: result, queryHash: result.changed ? createHash('sha256').update(print(result.document)).digest('hex') : undefined };
          });
          if (!filtering.filtered.changed) return;
          filtered = filtering.filtered;
          // Apollo Server types these as read-only for other plugins; replacing them here, before execution, is what lets the gateway plan only what is allowed.
          const writable = requestContext as { document: DocumentNode; queryHash: string };
          writable.document = filtered.document;
          writable.queryHash = filtering.queryHash!;
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
