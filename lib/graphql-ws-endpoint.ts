/**
 * GraphQL over WebSocket (the graphql-transport-ws protocol of `graphql-ws`,
 * what Apollo Sandbox and Apollo Client speak) on an HttpService's own port
 * and GraphQL path, so HTTP and subscriptions share one address.
 *
 * Upgrades are refused once the service drains; live sockets get the drain
 * timeout to finish their subscriptions and are then closed with
 * CloseCode.GoingAway, so a client reconnects to another replica instead of hanging.
 *
 * Frames sent in one turn of the event loop leave the socket in one write
 * (coalesceWrites): a stream's server fans one upstream read (a decode step
 * of the gpu-server, an upstream WebSocket read) out as a message per
 * subscription, and a system call per message was the largest single cost
 * of relaying a token stream. And a subscription's document is parsed and
 * validated once per text (knownDocuments), not once per subscribe: clients
 * open many subscriptions of the same few operations, and validation was most
 * of a subscribe's CPU in a subgraph starting a hundred streams at once.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
// Types through lib/graphql-ws-use-ws.d.ts.
import { useServer, type Extra } from 'graphql-ws/use/ws';
import type { ServerOptions } from 'graphql-ws';
import { parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { remember } from './bounded-map';
import { type WebSocket, WebSocketServer } from 'ws';
import type { HttpService } from './http-service';
import type { Logger } from './log';

/** The close codes a GraphQL WebSocket ends with: the standard one, graphql-ws's 4401, and 4503 of ours (in graphql-ws's 4xxx range, after HTTP's 503). */
export enum CloseCode {
  /** The service is shutting down: reconnect, to another replica. */
  GoingAway = 1001,
  /** The credentials of `connection_init` were refused, or are no longer valid. */
  Unauthorized = 4401,
  /** The credentials cannot be checked right now (the auth service is unreachable): retry later. */
  ServiceUnavailable = 4503,
}

export interface GraphQLWsEndpointOptions {
  http: HttpService;
  /** The path WebSocket upgrades are accepted on (the GraphQL path). */
  path: string;
  log: Logger;
  server: ServerOptions<Record<string, unknown>, Extra>;
  /** Interval of WebSocket pings; a peer that misses a pong is dropped. @default 12000 ms */
  keepAliveMs?: number;
  /** Largest message accepted from a client. @default 1 MiB */
  maxPayloadBytes?: number;
}

export interface GraphQLWsEndpoint {
  /** Live WebSocket connections. */
  readonly connections: number;
  /** Waits up to `timeoutMs` for sockets to close, then closes the rest with CloseCode.GoingAway. */
  drain(timeoutMs: number): Promise<void>;
}

export function serveGraphQLWs(options: GraphQLWsEndpointOptions): GraphQLWsEndpoint {
  const { http, path, log } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes ?? 1024 * 1024 });
  // Refusals close sockets themselves with their reason; anything else thrown in a hook is internal and stays out of close reasons.
  useServer({ ...knownDocuments(), ...options.server, isProd: true }, wss, options.keepAliveMs ?? 12_000);

  http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const requested = (req.url ?? '/').split('?')[0];
    if (requested !== path) return refuse(socket, 404, `no WebSocket endpoint at ${requested}; GraphQL over WebSocket is on ${path}`);
    if (http.phase !== 'ready') return refuse(socket, 503, `the service is ${http.phase} and accepts no new connections`);
    wss.handleUpgrade(req, socket, head, (ws) => {
      coalesceWrites(ws, socket as Socket);
      wss.emit('connection', ws, req);
    });
  });
  wss.on('error', (error) => log.error('websocket server error', { error }));

  return {
    get connections() {
      return wss.clients.size;
    },
    async drain(timeoutMs) {
      if (wss.clients.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, timeoutMs);
          timer.unref();
          const check = () => {
            if (wss.clients.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          };
          for (const client of wss.clients) client.once('close', () => setImmediate(check));
        });
      }
      for (const client of wss.clients) client.close(CloseCode.GoingAway, 'the service is shutting down; reconnect');
      // A peer that never answers the close frame must not hold the drain past its timeout.
      const cut = setTimeout(() => wss.clients.forEach((client) => client.terminate()), 1_000);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      clearTimeout(cut);
    },
  };
}

const MAX_KNOWN_DOCUMENTS = 1000;
/** Longer texts are parsed each time: the memo must not let a client pin large texts in memory. */
const MAX_KNOWN_QUERY_CHARS = 8 * 1024;

/**
 * graphql-ws's parse and validate steps, remembering each short query text's
 * document and which schema it passed: a document that passed once passes
 * again, and graphql-js treats documents as read-only, so subscriptions of one
 * text share it. Only valid documents stay (a memo of junk helps no one), and
 * at most MAX_KNOWN_DOCUMENTS of them.
 */
function knownDocuments(): Pick<ServerOptions, 'parse' | 'validate'> {
  const documents = new Map<string, DocumentNode>();
  const texts = new WeakMap<DocumentNode, string>();
  const passed = new WeakMap<DocumentNode, GraphQLSchema>();
  return {
    parse: (source) => {
      const query = typeof source === 'string' ? source : source.body;
      const known = documents.get(query);
      if (known) return known;
      const document = parse(source);
      if (query.length <= MAX_KNOWN_QUERY_CHARS) texts.set(document, query);
      return document;
    },
    validate: (schema, document) => {
      if (passed.get(document) === schema) return [];
      const errors = validate(schema, document);
      const text = texts.get(document);
      if (errors.length === 0 && text !== undefined) {
        passed.set(document, schema);
        remember(documents, text, document, MAX_KNOWN_DOCUMENTS);
      }
      return errors;
    },
  };
}

/**
 * Corks the socket at the first frame sent in a turn of the event loop and
 * uncorks it once that turn's I/O callbacks and their promise chains have run
 * (setImmediate), so the frames go out in one write. Each frame is still its
 * own WebSocket message; a lone message waits for no timer, only for the rest
 * of the current turn.
 */
function coalesceWrites(ws: WebSocket, socket: Socket): void {
  const send = ws.send.bind(ws) as (data: unknown, ...rest: unknown[]) => void;
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  ws.send = ((data: unknown, ...rest: unknown[]) => {
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(flush);
    }
    send(data, ...rest);
  }) as WebSocket['send'];
}

function refuse(socket: Duplex, status: number, message: string): void {
  const reason = status === 404 ? 'Not Found' : 'Service Unavailable';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(message)}\r\nconnection: close\r\n\r\n${message}`);
}
