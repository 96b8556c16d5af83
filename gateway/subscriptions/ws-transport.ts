/**
 * GraphQL over WebSocket for clients (graphql-ws, on /graphql like HTTP):
 * what Apollo Sandbox and Apollo Client use for subscriptions. The caller is
 * authenticated once, from the `connection_init` payload (`Authorization`,
 * `authorization`, or `headers.Authorization`), with the same rules as an
 * HTTP request; a refused connection is closed with CloseCode.Unauthorized
 * (or ServiceUnavailable when the keys cannot be fetched) and the reason. Queries and mutations sent over the
 * socket run through Apollo Server like HTTP ones.
 */
import type { IncomingMessage } from 'node:http';
import type { ApolloServer } from '@apollo/server';
import type { ExecutionArgs, GraphQLError } from 'graphql';
import { CloseCode, serveGraphQLWs, type GraphQLWsEndpoint } from '../../lib/graphql-ws-endpoint';
import type { HttpService } from '../../lib/http-service';
import type { Logger } from '../../lib/log';
import type { GatewayContext } from '../auth/context';
import type { SubscriptionConnection, SubscriptionService } from './subscription-service';
import type { UpstreamEvent } from './upstream';

/** Refuses a connection: its message becomes the WebSocket close reason. */
export class ConnectionRefused extends Error {
  constructor(
    readonly closeCode: CloseCode,
    message: string,
  ) {
    super(message);
  }
}

export interface GatewayWsOptions {
  http: HttpService;
  log: Logger;
  apollo: ApolloServer<GatewayContext>;
  subscriptions: SubscriptionService;
  /** Builds the caller's context from an Authorization value and the upgrade request (the caller's address); throws ConnectionRefused. */
  authenticate: (authorization: string | undefined, upgrade: IncomingMessage) => Promise<GatewayContext>;
  keepAliveMs: number;
  /**
   * How often an open connection's credentials are checked again (answers are
   * cached, so a check is cheap); a revoked key or a logged-out session closes
   * the connection with CloseCode.Unauthorized, ending its subscriptions.
   */
  recheckMs: number;
}

/** What onSubscribe hands to execute/subscribe through graphql-ws's ExecutionArgs. */
type Prepared = { run: () => Promise<unknown> } | { events: AsyncGenerator<UpstreamEvent> };

export function serveGatewayWs(options: GatewayWsOptions): GraphQLWsEndpoint {
  const connections = new WeakMap<object, { context: GatewayContext; subscriptions: SubscriptionConnection; recheck: NodeJS.Timeout }>();
  return serveGraphQLWs({
    http: options.http,
    path: '/graphql',
    log: options.log,
    keepAliveMs: options.keepAliveMs,
    server: {
      onConnect: async (ctx) => {
        const authorization = authorizationOf(ctx.connectionParams);
        try {
          const context = await options.authenticate(authorization, ctx.extra.request);
          // The socket may have closed while the credentials were checked: onClose has run and found nothing to clean up.
          if (ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) return false;
          // Authenticated once at connection_init; checked again while open, so revocation reaches long-lived sockets too.
          const recheck = setInterval(() => {
            options.authenticate(authorization, ctx.extra.request).catch((error: unknown) => {
              if (error instanceof ConnectionRefused && error.closeCode === CloseCode.Unauthorized) ctx.extra.socket.close(error.closeCode, error.message.slice(0, 120));
            });
          }, options.recheckMs);
          recheck.unref();
          connections.set(ctx.extra, { context, subscriptions: options.subscriptions.openConnection(context), recheck });
          return true;
        } catch (error) {
          if (!(error instanceof ConnectionRefused)) throw error;
          ctx.extra.socket.close(error.closeCode, error.message.slice(0, 120));
          return false;
        }
      },
      onClose: (ctx) => {
        const connection = connections.get(ctx.extra);
        if (!connection) return;
        clearInterval(connection.recheck);
        void connection.subscriptions.close();
      },
      onSubscribe: async (ctx, _id, payload): Promise<ExecutionArgs | readonly GraphQLError[]> => {
        const connection = connections.get(ctx.extra)!;
        const prepared = options.subscriptions.prepare(payload);
        if (Array.isArray(prepared)) return prepared;
        const { document, operation, variables } = prepared as Exclude<typeof prepared, GraphQLError[]>;
        let contextValue: Prepared;
        if (operation.operation === 'subscription') {
          const events = await options.subscriptions.start(connection.subscriptions, prepared, payload, connection.context);
          if (Array.isArray(events)) return events;
          contextValue = { events: events as AsyncGenerator<UpstreamEvent> };
        } else {
          contextValue = {
            run: async () => {
              const response = await options.apollo.executeOperation(
                { query: payload.query, variables, operationName: payload.operationName ?? undefined },
                { contextValue: { ...connection.context, requestId: `${connection.context.requestId}-${_id}` } },
              );
              return response.body.kind === 'single' ? response.body.singleResult : { errors: [{ message: 'incremental delivery is not supported over WebSocket' }] };
            },
          };
        }
        return { schema: options.subscriptions.schema, document, variableValues: variables, operationName: payload.operationName, contextValue };
      },
      // Results here are already formatted (from subgraphs, or from Apollo Server): send them as they are.
      onNext: (_ctx, _id, _payload, _args, result) => result as never,
      execute: (args) => (args.contextValue as { run: () => Promise<never> }).run(),
      subscribe: (args) => (args.contextValue as { events: AsyncGenerator<never> }).events,
    },
  });
}

function authorizationOf(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (!params) return undefined;
  const headers = (params.headers ?? {}) as Record<string, unknown>;
  const value = params.Authorization ?? params.authorization ?? headers.Authorization ?? headers.authorization;
  return typeof value === 'string' ? value : undefined;
}
