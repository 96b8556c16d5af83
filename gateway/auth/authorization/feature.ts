/**
 * Enforces the supergraph's `@authenticated`/`@requiresScopes` on every
 * operation, between validation and planning:
 *
 * - `operationDidResolve` filters the validated document and swaps it in,
 *   with a `queryHash` of its own: @apollo/gateway caches query plans by
 *   that hash, and callers with different scopes must not share a plan;
 * - when nothing is left, Apollo Server answers without execution, and a
 *   subscription is refused before anything is planned or opened upstream;
 * - the removed fields' nulls and errors are put back in the response, and
 *   in every event of a subscription (each event is a whole result).
 */
import { createHash } from 'node:crypto';
import { GraphQLError, print } from 'graphql';
import { DocumentMemo } from '../../../lib/document-memo';
import type { GatewayFeature } from '../../pipeline/feature';
import { StateKey } from '../../pipeline/operation-state';
import { filterOperation, type FilteredOperation } from './filter';
import type { AuthorizationPolicy } from './policy';
import { completeResult, refusalError } from './response';

/** A filtered operation with the hash its plan is cached under. */
interface Filtering {
  filtered: FilteredOperation;
  queryHash: string | undefined;
}

const FILTERED = new StateKey<FilteredOperation>('authorization');

export function authorization(policy: AuthorizationPolicy): GatewayFeature {
  // What is removed depends only on whether the caller is signed in and on their scopes: callers alike share one filtering.
  const filterings = new DocumentMemo<Filtering>();
  return {
    name: 'authorization',
    operationDidResolve(operation) {
      const { claims } = operation.context.identity;
      const { schema, document, operationName } = operation;
      const caller = `${operationName ?? ''}\n${claims.sub ? 'signed in' : 'anonymous'}\n${[...claims.scopes].sort().join(' ')}`;
      const { filtered, queryHash } = filterings.get(schema, document, caller, () => {
        const result = filterOperation(policy, schema, document, operationName, claims);
        return { filtered: result, queryHash: result.changed ? createHash('sha256').update(print(result.document)).digest('hex') : undefined };
      });
      if (!filtered.changed) return undefined;
      if (filtered.empty && operation.subscription) {
        return filtered.refusals.map((refusal) => {
          const error = refusalError(refusal, claims);
          return new GraphQLError(error.message, { path: error.path, extensions: error.extensions });
        });
      }
      operation.set(FILTERED, filtered);
      operation.replaceDocument(filtered.document, queryHash);
      return undefined;
    },
    async responseForOperation(operation, { response }) {
      const filtered = operation.get(FILTERED);
      if (!filtered?.empty) return null;
      return { http: response.http, body: { kind: 'single', singleResult: completeResult(filtered, operation.context.identity.claims, {}) } };
    },
    responseWillSend(operation, { response: { body } }) {
      const filtered = operation.get(FILTERED);
      if (!filtered || filtered.empty) return;
      const { claims } = operation.context.identity;
      if (body.kind === 'single') body.singleResult = completeResult(filtered, claims, body.singleResult);
      else body.initialResult = completeResult(filtered, claims, body.initialResult);
    },
    eventWillSend(operation, event) {
      const filtered = operation.get(FILTERED);
      return filtered ? completeResult(filtered, operation.context.identity.claims, event) : event;
    },
  };
}
