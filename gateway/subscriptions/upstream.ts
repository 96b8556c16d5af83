/**
 * The gateway's side of subscriptions toward subgraphs: graphql-ws, the same
 * protocol clients use, with the caller's signed identity (for that subgraph's
 * audience) in `connection_init`. One upstream connection per subgraph is shared by all
 * subscriptions of one client connection (they carry the same identity), so
 * a subscription costs one `subscribe` message, not a WebSocket handshake.
 */
import { createClient, type Client, type FormattedExecutionResult } from 'graphql-ws';
import type { GraphQLFormattedError } from 'graphql';
import WebSocket from 'ws';
import { IDENTITY_HEADER } from '../../lib/identity';
import type { SignedIdentity } from '../auth/context';

export interface UpstreamRequest {
  query: string;
  variables: Record<string, unknown>;
  operationName?: string;
}

export type UpstreamEvent = FormattedExecutionResult<Record<string, unknown>, unknown>;

/** Thrown into a subscription whose upstream connection failed or closed. */
export class UpstreamClosedError extends Error {
  override name = 'UpstreamClosedError';
  constructor(
    readonly subgraph: string,
    reason: string,
  ) {
    super(`the ${subgraph} service ended the subscription: ${reason}`);
  }
}

export class UpstreamConnections {
  private readonly clients = new Map<string, Client>();

  constructor(
    private readonly urlOf: (subgraph: string) => string,
    private readonly identity: SignedIdentity,
  ) {}

  /**
   * Subscribes on `subgraph`; ending the returned iterator, or aborting
   * `signal`, unsubscribes upstream. graphql-ws's own iterator ends at once on
   * return() (it settles a pending next()), so the abort path is immediate
   * even while this generator waits for an event.
   */
  subscribe(subgraph: string, request: UpstreamRequest, signal?: AbortSignal): AsyncGenerator<UpstreamEvent> {
    const client = this.client(subgraph);
    // Signed afresh per subscription: the connection's own identity may be older than its lifetime,
    // and a subgraph forwards this one when it calls a sibling on the caller's behalf.
    const events = client.iterate<Record<string, unknown>>({ ...request, extensions: { [IDENTITY_HEADER]: this.identity.header(subgraph) } });
    signal?.addEventListener('abort', () => void events.return?.(undefined), { once: true });
    return (async function* () {
      try {
        yield* events;
      } catch (error) {
        // graphql-ws throws the subgraph's `error` message (a refused operation) as an array of GraphQL errors.
        if (Array.isArray(error)) {
          yield { errors: error as GraphQLFormattedError[] };
          return;
        }
        throw new UpstreamClosedError(subgraph, describe(error));
      } finally {
        await events.return?.();
      }
    })();
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.dispose()));
    this.clients.clear();
  }

  private client(subgraph: string): Client {
    let client = this.clients.get(subgraph);
    if (!client) {
      client = createClient({
        url: this.urlOf(subgraph).replace(/^http/, 'ws'),
        webSocketImpl: WebSocket,
        // Signed when the connection opens; the subgraph checks it once, at connection_init.
        connectionParams: () => ({ [IDENTITY_HEADER]: this.identity.header(subgraph) }),
        // Opened with the client connection's first subscription and kept until the client connection
        // closes (close() disposes it): later subscriptions skip the handshake. Not lazy, because a lazy
        // client's close timer would outlive dispose() and hold a stopping gateway open.
        lazy: false,
        // Failures reach the subscriptions that use the connection; nothing else should log them.
        onNonLazyError: () => undefined,
        // A subscription that has started generating must not be silently re-run elsewhere.
        retryAttempts: 0,
        keepAlive: 10_000,
      });
      this.clients.set(subgraph, client);
    }
    return client;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  const event = error as { code?: number; reason?: string } | null;
  if (event && typeof event.code === 'number') return `connection closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`;
  return String(error);
}
