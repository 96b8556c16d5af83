import type { TypedDocumentNode } from '@apollo/client';
import { setSession } from '../auth/session';
import { client } from './client';
import { isUnauthenticated } from './errors';

export interface LiveHandlers<T> {
  /** Each event's data, in order. */
  next: (data: T) => void;
  /** The subscription failed (a GraphQL error, a refused or lost socket); no more events follow. */
  error: (error: unknown) => void;
  /** The server ended the subscription. */
  complete: () => void;
}

/**
 * Follows a subscription over graphql-ws, outside Apollo's cache (stream
 * chunks share one id, so normalizing them would merge them into one).
 * Returns the function that ends it: unsubscribing sends graphql-ws's
 * `complete`, which stops the work behind it (a generation is cancelled and
 * billed for the text already sent).
 */
export function follow<T, V extends Record<string, unknown>>(query: TypedDocumentNode<T, V>, variables: V, handlers: LiveHandlers<T>): () => void {
  const fail = (error: unknown) => {
    if (isUnauthenticated(error)) setSession(null);
    handlers.error(error);
  };
  const subscription = client.subscribe({ query, variables, fetchPolicy: 'no-cache' }).subscribe({
    next: (result) => {
      if (result.error) fail(result.error);
      else if (result.data) handlers.next(result.data as T);
    },
    error: fail,
    complete: handlers.complete,
  });
  return () => subscription.unsubscribe();
}
