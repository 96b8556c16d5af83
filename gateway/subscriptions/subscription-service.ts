/**
 * What both client-facing subscription transports (graphql-ws and multipart
 * HTTP) share: the gateway's features on the request's source (the
 * pipeline's source stage), parsing, validation and variable coercion against
 * the API schema, the features on the resolved operation, planning, the
 * per-connection limit, and execution, each event passing through the
 * features on its way to the client.
 *
 * Limits: a connection may hold `perConnection` live subscriptions; past it a
 * new subscription is refused with RATE_LIMITED (scope `connection`) and the
 * live ones continue. Every other limit is a feature's (gateway/pipeline).
 */
import { createHash } from 'node:crypto';
import type { ServiceMap } from '@apollo/gateway';
import { ApolloServerErrorCode } from '@apollo/server/errors';
import { getOperationAST, getVariableValues, GraphQLError, parse, validate, type DocumentNode, type OperationDefinitionNode } from 'graphql';
import { remember } from '../../lib/bounded-map';
import { ErrorCode } from '../../lib/errors';
import { interruptible, RETURNED } from '../../lib/interruptible';
import type { Logger } from '../../lib/log';
import type { GatewayContext } from '../auth/context';
import { requestLog } from '../metrics/request-log';
import { OperationState } from '../pipeline/operation-state';
import { GatewayPipeline } from '../pipeline/pipeline';
import { executeFederatedSubscription } from './federated-subscription';
import type { SubscriptionPlan, SubscriptionPlanner } from './planner';
import { UpstreamClosedError, UpstreamConnections, type UpstreamEvent } from './upstream';

const MAX_CACHED_DOCUMENTS = 1000;
/** Longer documents are parsed each time: the cache must not let a client pin large texts in memory. */
const MAX_CACHED_QUERY_CHARS = 8 * 1024;

export interface SubscriptionLimits {
  perConnection: number;
}

export interface SubscriptionRequest {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: unknown;
}

/** One client connection (a WebSocket, or one multipart HTTP request). */
export class SubscriptionConnection {
  live = 0;
  constructor(readonly upstream: UpstreamConnections) {}
  close(): Promise<void> {
    return this.upstream.close();
  }
}

/** A parsed, validated operation, ready to run. */
export interface PreparedOperation {
  document: DocumentNode;
  /** The SHA-256 of the query text, as Apollo Server's `queryHash` (what plans are cached by). */
  queryHash: string;
  operation: OperationDefinitionNode;
  variables: Record<string, unknown>;
}

interface KnownDocument {
  document: DocumentNode;
  queryHash: string;
}

export class SubscriptionService {
  /** Parsed and validated documents by query text: clients send the same few operations again and again. */
  private readonly documents = new Map<string, KnownDocument>();
  private readonly pipeline: GatewayPipeline;

  constructor(
    private readonly deps: {
      planner: SubscriptionPlanner;
      services: ServiceMap;
      urlOf: (subgraph: string) => string;
      log: Logger;
      /** The gateway's features, the same as Apollo Server runs; none when absent (tests of other concerns). */
      pipeline?: GatewayPipeline;
    },
    private readonly limits: SubscriptionLimits,
  ) {
    this.pipeline = deps.pipeline ?? new GatewayPipeline([]);
  }

  /** The API schema operations are validated against. */
  get schema() {
    return this.deps.planner.schema;
  }

  openConnection(context: GatewayContext): SubscriptionConnection {
    return new SubscriptionConnection(new UpstreamConnections(this.deps.urlOf, context.identity));
  }

  /**
   * Parses and validates an operation of any kind, or returns the errors a
   * client should see. The source stage runs first unless the transport has
   * run it already (`sourceChecked`: HTTP runs it on every request); it may
   * rewrite the request (a safelisted id becomes its document).
   */
  prepare(request: SubscriptionRequest, { sourceChecked = false } = {}): PreparedOperation | GraphQLError[] {
    const refused = sourceChecked ? undefined : this.pipeline.requestDidStart(request);
    if (refused) return [refused];
    if (typeof request.query !== 'string' || request.query.trim() === '') {
      return [coded(ApolloServerErrorCode.GRAPHQL_PARSE_FAILED, 'the request expects a GraphQL document in "query", but got none')];
    }
    const known = this.document(request.query);
    if (Array.isArray(known)) return known;
    const { document, queryHash } = known;
    const operation = getOperationAST(document, request.operationName ?? undefined);
    if (!operation) {
      return [
        coded(
          ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE,
          request.operationName ? `no operation named "${request.operationName}" in the document` : 'the document has several operations: name one in "operationName"',
        ),
      ];
    }
    const coerced = getVariableValues(this.deps.planner.schema, operation.variableDefinitions ?? [], request.variables ?? {});
    if (coerced.errors) return coerced.errors.map((e) => coded(ErrorCode.BadUserInput, e.message, e));
    return { document, queryHash, operation, variables: request.variables ?? {} };
  }

  private document(query: string): KnownDocument | GraphQLError[] {
    const known = this.documents.get(query);
    if (known) return known;
    let document: DocumentNode;
    try {
      document = parse(query);
    } catch (error) {
      return [coded(ApolloServerErrorCode.GRAPHQL_PARSE_FAILED, (error as GraphQLError).message)];
    }
    const errors = validate(this.deps.planner.schema, document);
    if (errors.length) return errors.map((e) => coded(ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED, e.message, e));
    // Only valid, short documents are kept: errors and long texts are what a flood of junk would fill it with.
    const valid = { document, queryHash: createHash('sha256').update(query).digest('hex') };
    if (query.length <= MAX_CACHED_QUERY_CHARS) {
      remember(this.documents, query, valid, MAX_CACHED_DOCUMENTS);
    }
    return valid;
  }

  /**
   * Starts a prepared subscription, or returns why it is refused. The
   * generator ends when the upstream stream ends; returning from it
   * unsubscribes upstream and frees the limits.
   */
  async start(connection: SubscriptionConnection, prepared: PreparedOperation, request: SubscriptionRequest, context: GatewayContext): Promise<AsyncGenerator<UpstreamEvent> | GraphQLError[]> {
    if (connection.live >= this.limits.perConnection) {
      return [
        coded(ErrorCode.RateLimited, `too many live subscriptions on this connection: the limit is ${this.limits.perConnection}; end one before starting another`, undefined, {
          limit: this.limits.perConnection,
          scope: 'connection',
        }),
      ];
    }
    // Counted before the features run (the rate limiter waits on Redis), so concurrent starts on one connection cannot pass its limit together.
    connection.live++;
    const state = new OperationState(context, true);
    state.document = prepared.document;
    state.queryHash = prepared.queryHash;
    state.operation = prepared.operation;
    state.operationName = request.operationName ?? null;
    state.variables = prepared.variables;
    state.schema = this.schema;
    const release = () => {
      connection.live--;
      this.pipeline.subscriptionDidEnd(state);
    };
    const refused = await this.pipeline.operationDidResolve(state);
    if (refused) {
      release();
      return [...refused];
    }
    let plan: SubscriptionPlan;
    try {
      // A feature that rewrites the document gives it a hash of its own when callers alike must not share the plan.
      if (state.queryHash === undefined) throw new Error('a feature replaced the document without the queryHash its plan is cached by');
      plan = this.deps.planner.plan(state.document, request.operationName, state.queryHash);
    } catch (error) {
      release();
      requestLog(this.deps.log, context).error('subscription planning failed', { error });
      return [coded(ErrorCode.InternalServerError, `the subscription could not be planned: ${(error as Error).message}`)];
    }
    this.pipeline.subscriptionDidStart(state);
    const { pipeline } = this;
    const deps = { ...this.deps, upstream: connection.upstream };
    const log = requestLog(this.deps.log, context);
    const unsubscribe = new AbortController();
    const events = (async function* () {
      try {
        for await (const event of executeFederatedSubscription(deps, {
          plan,
          query: request.query,
          variables: prepared.variables,
          operationName: request.operationName ?? undefined,
          context,
          signal: unsubscribe.signal,
        })) {
          yield pipeline.eventWillSend(state, event);
        }
      } catch (error) {
        log.warn('subscription ended by its upstream', { error: (error as Error).message });
        yield pipeline.eventWillSend(state, { errors: [upstreamEnded(error, context.requestId).toJSON()] });
      }
    })();
    // return() must reach the upstream subscription at once, not after its next event.
    return interruptible(events, { interrupt: () => unsubscribe.abort(RETURNED), end: release });
  }
}

/**
 * A subscription whose upstream went away (a restart, a crash): the caller may
 * subscribe again at once. The upstream's own words (addresses, socket codes)
 * are in the log line beside it, under the same request id.
 */
function upstreamEnded(error: unknown, requestId: string): GraphQLError {
  const service = error instanceof UpstreamClosedError ? error.subgraph : undefined;
  const who = service ? `the ${service} service` : 'an upstream service';
  return coded(ErrorCode.ServiceUnavailable, `${who} ended the subscription; subscribe again (request ${requestId})`, undefined, {
    ...(service ? { service } : {}),
    retryable: true,
    requestId,
  });
}

function coded(code: string, message: string, source?: GraphQLError, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { nodes: source?.nodes, extensions: { ...extensions, code } });
}
