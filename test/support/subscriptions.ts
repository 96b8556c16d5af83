/** Subscription clients for tests: graphql-ws over a real WebSocket, and multipart HTTP over fetch. */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

// biome-ignore lint/suspicious/noExplicitAny: tests read whatever shape their subscription asks for; a test that wants checking passes its own T
export interface Event<T = Record<string, any>> {
  data?: T | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

/**
 * A graphql-ws client of the gateway at `httpUrl`. With `connectAttempts` above 1 it opens the socket again, as a
 * browser client with graphql-ws' default retries does, when the socket fails before the server acknowledged it
 * (a connection that landed on a replica as it began to drain): no subscription had been sent yet, so none can run
 * twice. Once acknowledged it never reconnects, so a stream cut later is seen as cut.
 *
 * graphql-ws closes an idle socket at once by default, so a client that runs one stream after another opens a
 * socket (and the gateway one upstream) for each; `keepOpen` holds it open between operations, as a chat client
 * with a conversation open would, and as a benchmark comparing with a held gRPC stream must.
 */
export function wsClient(httpUrl: string, token?: string, options: { connectAttempts?: number; keepOpen?: boolean } = {}): Client {
  let acknowledged = false;
  return createClient({
    url: httpUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    ...(options.keepOpen ? { lazyCloseTimeout: 10 * 60_000 } : {}),
    retryAttempts: (options.connectAttempts ?? 1) - 1,
    shouldRetry: () => !acknowledged,
    on: { connected: () => (acknowledged = true) },
  });
}

/** Every event of a subscription, or the events up to `stopAfter` (then it unsubscribes). */
// biome-ignore lint/suspicious/noExplicitAny: as for Event
export async function collect<T = Record<string, any>>(client: Client, query: string, variables: Record<string, unknown>, stopAfter = Infinity): Promise<Event<T>[]> {
  const events: Event<T>[] = [];
  const iterator = client.iterate<T>({ query, variables });
  try {
    for await (const event of iterator) {
      events.push(event as Event<T>);
      if (events.length >= stopAfter) break;
    }
  } catch (error) {
    // graphql-ws throws an operation's `error` message as an array of GraphQL errors.
    if (Array.isArray(error)) events.push({ errors: error });
    else throw error;
  }
  return events;
}

/** One part of a multipart/mixed subscription response: an event, or no payload for a heartbeat. */
export interface MultipartPart<T> {
  payload?: Event<T>;
}

/** Reads a multipart/mixed subscription response: parts in order, heartbeats (`{}`) included. */
export async function readMultipart<T = Record<string, unknown>>(response: Response): Promise<MultipartPart<T>[]> {
  const text = await response.text();
  const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get('content-type') ?? '')?.[1];
  if (!boundary) throw new Error(`no multipart boundary in ${response.headers.get('content-type')}`);
  const [, ...rest] = text.split(`--${boundary}`);
  const parts: MultipartPart<T>[] = [];
  for (const part of rest) {
    if (part.startsWith('--')) break;
    const body = part.split('\r\n\r\n').slice(1).join('\r\n\r\n').trim();
    parts.push(JSON.parse(body));
  }
  if (!rest.some((p) => p.startsWith('--'))) throw new Error('the multipart response did not end with its closing boundary');
  return parts;
}
