import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import { ApolloServerPluginInlineTraceDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { GraphQLError, parse, type GraphQLSchema } from 'graphql';
import type Redis from 'ioredis';
import { apolloHttpHandler, ContextError } from './apollo-http';
import { compiledSubscribe } from './compiled-subscriptions';
import { ErrorCode } from './errors';
import { enforceFieldAuthorization } from './field-authorization';
import { CloseCode, serveGraphQLWs, type GraphQLWsEndpoint } from './graphql-ws-endpoint';
import { HttpService } from './http-service';
import type { Extra } from 'graphql-ws/use/ws';
import { type Identity, IDENTITY_HEADER, identityDeadline, IdentityError, type IdentityVerifier } from './identity';
import type { Logger } from './log';
import { redisIsReady, redisUnavailableResponse } from './redis';

/** What every subgraph resolver can rely on. */
export interface SubgraphContext {
  /** The caller, as signed by the gateway. `sub` is null for anonymous callers. */
  identity: Identity;
  /** The header as received, to forward unchanged when calling a sibling service. */
  identityHeader: string;
  log: Logger;
}

/** What a service's `start` function hands back, in one process or many. */
export interface RunningService {
  name: string;
  port: number;
  http: HttpService;
  stop(): Promise<void>;
}

/** What the launcher gives each service it starts. */
export interface ServiceConfig {
  host: string;
  port: number;
  redisUrl: string;
  log: Logger;
}

export interface SubgraphServiceOptions<TContext extends SubgraphContext> {
  /** The service's name, which every identity it accepts must name in its audience (lib/service-calls.ts). */
  name: string;
  schemaFile: string;
  resolvers: GraphQLResolverMap<TContext>;
  config: ServiceConfig;
  redis: Redis;
  verifier: IdentityVerifier;
  /** Adds the service's own data-access objects to the base context. */
  context: (base: SubgraphContext) => TContext;
  /** Extra `/ready` checks besides Redis. */
  checks?: Record<string, () => Promise<boolean>>;
  /** Routes the service serves outside GraphQL (return true when handled). */
  routes?: (req: IncomingMessage, res: ServerResponse) => boolean;
  onStop?: () => Promise<void>;
}

/**
 * Starts a Federation 2 subgraph over its own `schema.graphql`.
 *
 * Every GraphQL request must carry a valid signed identity (DESIGN §4) issued
 * for this service (its audience names `options.name`); one without gets HTTP 401 and an UNAUTHENTICATED error before any resolver runs,
 * so reaching a subgraph directly yields nothing.
 */
export async function startSubgraph<TContext extends SubgraphContext>(options: SubgraphServiceOptions<TContext>): Promise<RunningService> {
  const { config, name } = options;
  const log = config.log;
  const typeDefs = parse(readFileSync(options.schemaFile, 'utf8'));
  const schema = buildSubgraphSchema([{ typeDefs, resolvers: options.resolvers }]);
  enforceFieldAuthorization(schema);
  const apollo = new ApolloServer<TContext>({
    schema,
    // Inline traces only feed Apollo Studio, which Sluice does not report to.
    plugins: [ApolloServerPluginLandingPageDisabled(), ApolloServerPluginInlineTraceDisabled()],
    includeStacktraceInErrorResponses: false,
    // Redis away or failing over is SERVICE_UNAVAILABLE (retryable), not an uncoded INTERNAL_SERVER_ERROR.
    formatError: (formatted, error) => redisUnavailableResponse(formatted, unwrapResolverError(error)) ?? formatted,
    // The service's HttpService owns signals and draining; Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
  });
  await apollo.start();

  const graphql = apolloHttpHandler(apollo, {
    context: async (req) => {
      const header = req.headers[IDENTITY_HEADER];
      const identityHeader = Array.isArray(header) ? header[0] : header;
      try {
        const identity = options.verifier.verify(identityHeader, name);
        return options.context({ identity, identityHeader: identityHeader as string, log });
      } catch (error) {
        if (error instanceof IdentityError) {
          log.warn('refused request without a valid identity', { reason: error.message });
          throw new ContextError(ErrorCode.Unauthenticated, error.message);
        }
        throw error;
      }
    },
  });
  let websocket: GraphQLWsEndpoint | undefined;

  const http: HttpService = new HttpService({
    name,
    host: config.host,
    port: config.port,
    log,
    handle: async (req, res) => {
      if (options.routes?.(req, res)) return;
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/graphql' || path === '/') return graphql(req, res);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`${name}: no route for ${path}; GraphQL is served on /graphql\n`);
    },
    checks: { redis: () => redisIsReady(options.redis), ...options.checks },
    onDrain: (timeoutMs) => websocket?.drain(timeoutMs) ?? Promise.resolve(),
    onStop: async () => {
      await apollo.stop();
      await options.onStop?.();
      options.redis.disconnect();
    },
  });
  if (schema.getSubscriptionType()) websocket = serveSubscriptions(http, schema, options);
  const port = await http.listen();
  http.markReady();
  log.info('ready', { url: `http://${config.host}:${port}/graphql` });
  return { name, port, http, stop: () => http.stop() };
}

/**
 * The subgraph's subscriptions over graphql-ws on /graphql, for the gateway.
 * The signed identity arrives in `connection_init` (a WebSocket carries no
 * per-message headers); a connection without a valid one is closed with CloseCode.Unauthorized
 * before any operation runs, as an HTTP request without one gets 401.
 *
 * Every subscription is checked again: its own identity (payload.extensions),
 * which renews the connection's, or else the connection's, which must still
 * be valid. When the connection's identity expires without renewal, the
 * socket is closed with CloseCode.Unauthorized once the subscriptions it
 * authorized have ended (a running one, like an HTTP response being streamed,
 * finishes): a kept-open socket does not outlive its identity.
 */
function serveSubscriptions<TContext extends SubgraphContext>(http: HttpService, schema: GraphQLSchema, options: SubgraphServiceOptions<TContext>): GraphQLWsEndpoint {
  const log = options.config.log;
  type Caller = { identity: Identity; identityHeader: string };
  const callers = new WeakMap<object, Caller>();
  const expiryTimers = new WeakMap<object, NodeJS.Timeout>();
  /** Each subscribe message's verified caller, from onSubscribe to context. */
  const verified = new WeakMap<object, Caller>();
  type WsContext = { extra: Extra; subscriptions: Record<string, unknown> };
  /** (Re)arms the close of `ctx`'s socket at its caller's identity deadline. */
  const watchExpiry = (ctx: WsContext, caller: Caller) => {
    clearTimeout(expiryTimers.get(ctx.extra));
    const check = () => {
      if (callers.get(ctx.extra) !== caller) return; // renewed meanwhile
      // Still streaming what it authorized: look again shortly.
      if (Object.keys(ctx.subscriptions).length > 0) return expiryTimers.set(ctx.extra, setTimeout(check, 1_000).unref());
      log.info('closing a subscription connection whose identity expired', { sub: caller.identity.sub });
      ctx.extra.socket.close(CloseCode.Unauthorized, `Unauthorized: the connection's ${IDENTITY_HEADER} expired; reconnect with a fresh one`);
    };
    expiryTimers.set(ctx.extra, setTimeout(check, Math.max(0, identityDeadline(caller.identity) - Date.now())).unref());
  };
  // A connection can outlive its identity's signature; the gateway signs each
  // subscription afresh (payload.extensions), which is what a service calling a
  // sibling from this subscription must forward. It must name the connection's caller.
  const freshCaller = (connection: Caller, extensions: Record<string, unknown> | null | undefined): Caller | IdentityError => {
    const header = extensions?.[IDENTITY_HEADER];
    try {
      if (header === undefined) {
        options.verifier.verify(connection.identityHeader, options.name); // still valid, or the subscription is refused
        return connection;
      }
      const identity = options.verifier.verify(typeof header === 'string' ? header : undefined, options.name);
      if (identity.sub !== connection.identity.sub) return new IdentityError(`the subscription's ${IDENTITY_HEADER} names another caller than the connection's`);
      return { identity, identityHeader: header as string };
    } catch (error) {
      if (error instanceof IdentityError) return error;
      throw error;
    }
  };
  return serveGraphQLWs({
    http,
    path: '/graphql',
    log,
    server: {
      schema,
      subscribe: compiledSubscribe(schema),
      onConnect: (ctx) => {
        const identityHeader = ctx.connectionParams?.[IDENTITY_HEADER];
        try {
          const identity = options.verifier.verify(typeof identityHeader === 'string' ? identityHeader : undefined, options.name);
          const caller = { identity, identityHeader: identityHeader as string };
          callers.set(ctx.extra, caller);
          watchExpiry(ctx, caller);
          ctx.extra.socket.once('close', () => clearTimeout(expiryTimers.get(ctx.extra)));
          return true;
        } catch (error) {
          if (!(error instanceof IdentityError)) throw error;
          log.warn('refused subscription connection without a valid identity', { reason: error.message });
          ctx.extra.socket.close(CloseCode.Unauthorized, `Unauthorized: ${error.message}`.slice(0, 120));
          return false;
        }
      },
      // Checked in onSubscribe (so a bad one is the operation's error) and handed to context through
      // the subscribe message's payload, the object graphql-ws gives both: a signature is verified once per subscription.
      onSubscribe: (ctx, _id, payload) => {
        const connection = callers.get(ctx.extra)!;
        const fresh = freshCaller(connection, payload.extensions);
        if (fresh instanceof IdentityError) return [new GraphQLError(fresh.message, { extensions: { code: ErrorCode.Unauthenticated } })];
        // A fresher identity of the same caller renews the connection's.
        if (fresh !== connection && fresh.identity.exp > connection.identity.exp) {
          callers.set(ctx.extra, fresh);
          watchExpiry(ctx, fresh);
        }
        verified.set(payload, fresh);
        return undefined;
      },
      context: (_ctx, _id, payload) => {
        const caller = verified.get(payload)!;
        verified.delete(payload);
        return options.context({ ...caller, log });
      },
    },
  });
}
