/**
 * The upstream connections (one WebSocket per subgraph) of the SSE door,
 * shared by each caller's streams. A graphql-ws client multiplexes its
 * subscriptions on one connection, so the gateway opens one upstream
 * connection for them all; an SSE stream is a request of its own, and
 * opening one upstream per stream would cost each a WebSocket handshake and
 * `connection_init` before its first token. So the streams of one caller
 * (the same claims: the connection carries the caller's signed identity)
 * share them, for as long as one is live and `LINGER_MS` after, so a client
 * streaming one request after another does not pay the handshake each time.
 * Each stream is still its own `SubscriptionConnection` for the service's
 * per-connection limit, which is about a client connection, not a caller.
 */
import type { GatewayContext } from '../auth/context';
import { SubscriptionConnection, type SubscriptionService } from '../subscriptions/subscription-service';

const LINGER_MS = 2_000;

interface Shared {
  base: SubscriptionConnection;
  streams: number;
  idle?: NodeJS.Timeout;
}

export class CallerConnections {
  private readonly shared = new Map<string, Shared>();

  constructor(private readonly subscriptions: SubscriptionService) {}

  /** A connection for one stream; `release` it when the stream ends. */
  acquire(context: GatewayContext): { connection: SubscriptionConnection; release(): void } {
    const { sub, scopes, keyId, sessionId, ip } = context.identity.claims;
    const key = JSON.stringify([sub, [...scopes].sort(), keyId, sessionId, ip]);
    let entry = this.shared.get(key);
    if (!entry) {
      entry = { base: this.subscriptions.openConnection(context), streams: 0 };
      this.shared.set(key, entry);
    }
    clearTimeout(entry.idle);
    entry.streams++;
    const shared = entry;
    let released = false;
    return {
      connection: new SubscriptionConnection(shared.base.upstream),
      release: () => {
        if (released) return;
        released = true;
        if (--shared.streams > 0) return;
        // Unref'd: a lingering connection must not hold a stopping gateway open longer than the linger.
        shared.idle = setTimeout(() => {
          this.shared.delete(key);
          void shared.base.close();
        }, LINGER_MS).unref();
      },
    };
  }
}
