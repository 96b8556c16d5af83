/**
 * How the door runs its fixed operations: through the gateway's own paths,
 * never a side door. A query or mutation goes to Apollo Server as an HTTP
 * request would (every feature of the pipeline, as the Apollo plugin, the
 * deduplicating gateway, the subgraph calls); a subscription goes to the
 * SubscriptionService the graphql-ws and multipart transports use. The
 * source stage (operation limits on the text, the safelist) runs first on
 * both, as the HTTP handler runs it for `/graphql`.
 */
import type { ApolloServer } from '@apollo/server';
import type { GatewayContext } from '../auth/context';
import type { GatewayPipeline } from '../pipeline/pipeline';
import type { SubscriptionService } from '../subscriptions/subscription-service';
import type { UpstreamEvent } from '../subscriptions/upstream';
import { CallerConnections } from './caller-connections';
import { fromGraphQLError, OpenAiError } from './errors';
import { openAiQuotaHeaders } from './rate-limit-headers';

/** Turns the graph's `extensions.field` into OpenAI's parameter name. */
export type ParamOf = (field: string) => string | null;

export interface GraphAnswer {
  data: Record<string, unknown>;
  /** Apollo Server's response headers (RateLimit-*, x-cache, …) and OpenAI's x-ratelimit-* from them. */
  headers: Record<string, string>;
}

/** A live subscription: its events, and `close` to end it (unsubscribing upstream) however far it got. */
export interface GraphStream {
  events: AsyncGenerator<UpstreamEvent>;
  close(): Promise<void>;
}

export class GraphOperations {
  private readonly connections: CallerConnections;

  constructor(
    private readonly deps: {
      apollo: ApolloServer<GatewayContext>;
      pipeline: GatewayPipeline;
      subscriptions: SubscriptionService;
    },
  ) {
    this.connections = new CallerConnections(deps.subscriptions);
  }

  /** Runs a query or mutation; its first error, if any, is thrown as the OpenAI error. */
  async execute(query: string, variables: Record<string, unknown>, context: GatewayContext, paramOf: ParamOf): Promise<GraphAnswer> {
    const request = { query, variables };
    const refused = this.deps.pipeline.requestDidStart(request);
    if (refused) throw fromGraphQLError(refused.toJSON(), paramOf);
    const response = await this.deps.apollo.executeOperation({ query: request.query, variables }, { contextValue: context });
    if (response.body.kind !== 'single') throw new Error(`the gateway answered the door's ${query.split('(')[0]} incrementally, but the door's operations use no @defer or @stream`);
    const headers: Record<string, string> = {};
    for (const [name, value] of response.http.headers) if (name !== 'content-type') headers[name] = value;
    Object.assign(headers, openAiQuotaHeaders(response.http.headers));
    const { data, errors } = response.body.singleResult;
    if (errors?.length) {
      const error = fromGraphQLError(errors[0], paramOf);
      throw new OpenAiError(error.status, error.type, error.code, error.message, error.param, { ...headers, ...error.headers });
    }
    return { data: data ?? {}, headers };
  }

  /** Starts a subscription; a refusal (authorization, rate limits, the per-connection limit) is thrown as the OpenAI error. */
  async subscribe(query: string, variables: Record<string, unknown>, context: GatewayContext, paramOf: ParamOf): Promise<GraphStream> {
    const { subscriptions } = this.deps;
    const request = { query, variables };
    const prepared = subscriptions.prepare(request);
    if (Array.isArray(prepared)) throw fromGraphQLError(prepared[0].toJSON(), paramOf);
    const { connection, release } = this.connections.acquire(context);
    const events = await subscriptions.start(connection, prepared, request, context);
    if (Array.isArray(events)) {
      release();
      throw fromGraphQLError(events[0].toJSON(), paramOf);
    }
    let closing: Promise<void> | undefined;
    const close = async () => {
      try {
        await events.return(undefined);
      } finally {
        release();
      }
    };
    // Called by the client leaving and by the end of the response alike: the first call does the work.
    return { events, close: () => (closing ??= close()) };
  }
}
