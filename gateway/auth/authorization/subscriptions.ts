/**
 * The same enforcement for subscriptions, which the gateway runs itself
 * (gateway/subscriptions) rather than through Apollo Server: a subscription
 * whose root field the caller may not see is refused before anything is
 * planned or opened upstream; fields removed further down come back as
 * nulls with their errors on every event, as each event is a whole result.
 */
import { GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import { filterOperation } from './filter';
import type { AuthorizationPolicy, Caller } from './policy';
import { completeResult, refusalError, type ResultLike } from './response';

export type SubscriptionAuthorization =
  | { refused: GraphQLError[] }
  | { refused?: undefined; document: DocumentNode; events: <T extends ResultLike>(events: AsyncGenerator<T>) => AsyncGenerator<T> };

export function authorizeSubscription(
  policy: AuthorizationPolicy,
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  caller: Caller,
): SubscriptionAuthorization {
  const filtered = filterOperation(policy, schema, document, operationName, caller);
  if (filtered.empty) {
    return {
      refused: filtered.refusals.map((refusal) => {
        const error = refusalError(refusal, caller);
        return new GraphQLError(error.message, { path: error.path, extensions: error.extensions });
      }),
    };
  }
  if (!filtered.changed) return { document, events: (events) => events };
  return {
    document: filtered.document,
    events: async function* <T extends ResultLike>(events: AsyncGenerator<T>) {
      // Ending this loop early (the client unsubscribed) returns `events` too, which unsubscribes upstream.
      for await (const event of events) yield completeResult(filtered, caller, event);
    },
  };
}
