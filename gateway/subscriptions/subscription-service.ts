/**
 * What both client-facing subscription transports (graphql-ws and multipart
 * HTTP) share: parsing, validation and variable coercion against the API
 * schema, planning, the live-subscription limits, and execution.
 *
 * Limits: a connection may hold `perConnection` live subscriptions; a caller's
 * live streams across every connection and every gateway process, and the
 * request and token rates, are the rate limiter's (`gate`, in Redis:
 * gateway/rate-limits). Past a limit the new subscription is refused with
 * RATE_LIMITED; the live ones continue.
 */
import type { ServiceMap } from '@apollo/gateway';
import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  parse,
  validate,
  type DocumentNode,
  type OperationDefinitionNode,
} from 'graphql';
import { ErrorCode } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { authorizeSubscription } from '../auth/authorization/subscriptions';
import type { AuthorizationPolicy } from '../auth/authorization/policy';
import type { GatewayContext } from '../auth/context';
import { gatewayMetrics } from '../metrics/gateway-metrics';
import { requestLog } from '../metrics/request-log';
import { interruptible } from '../../lib/interruptible';
import { executeFederatedSubscription } from './federated-subscription';
import type { SubscriptionPlanner } from './planner';
import { UpstreamConnections, type UpstreamEvent } from './upstream';
import { checkCost, estimateCost, type CostDirectives, type DemandControlOptions } from '../demand-control/cost';
import { checkExpansion, checkShape, checkSource, measureOperation, type OperationLimits } from '../operation-limits/limits';
import { isStreamRefusal, type SubscriptionGate } from '../rate-limits/subscription-gate';
import { withStreamUsage } from '../rate-limits/token-charge-correction';
import type { Safelist } from '../persisted-queries/safelist';
import { remember } from '../../lib/bounded-map';

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
  operation: OperationDefinitionNode;
  variables: Record<string, unknown>;
}

export class SubscriptionService {
  /** Parsed and validated documents by query text: clients send the same few operations again and again. */
  private readonly documents = new Map<string, DocumentNode>();

  constructor(
    private readonly deps: {
      planner: SubscriptionPlanner;
      services: ServiceMap;
      urlOf: (subgraph: string) => string;
      log: Logger;
      /** The supergraph's @authenticated/@requiresScopes; without it nothing is filtered (tests of other concerns). */
      authorization?: AuthorizationPolicy;
      /** Size, depth, alias and root-field limits, as on HTTP; none when absent (tests of other concerns). */
      limits?: OperationLimits;
      /** The supergraph's `@cost`/`@listSize` and the budget, as on HTTP; none when absent (tests of other concerns). */
      demand?: { directives: CostDirectives; options: DemandControlOptions };
      /** Safelist mode: only the manifest's documents run (gateway/persisted-queries). */
      safelist?: Safelist;
      /** Streams per caller and request/token rates, shared by every gateway process; none when absent (tests of other concerns). */
      gate?: SubscriptionGate;
    },
    private readonly limits: SubscriptionLimits,
  ) {}

  /** The API schema operations are validated against. */
  get schema() {
    return this.deps.planner.schema;
  }

  openConnection(context: GatewayContext): SubscriptionConnection {
    return new SubscriptionConnection(new UpstreamConnections(this.deps.urlOf, context.identity));
  }

  /** Parses and validates an operation of any kind, or returns the errors a client should see. */
  prepare(request: SubscriptionRequest): PreparedOperation | GraphQLError[] {
    if (typeof request.query !== 'string' || request.query.trim() === '') {
      return [coded('GRAPHQL_PARSE_FAILED', 'the request expects a GraphQL document in "query", but got none')];
    }
    const tooLarge = this.deps.limits && checkSource(request.query, this.deps.limits);
    if (tooLarge) return [tooLarge];
    const listed = this.deps.safelist?.resolve(request);
    if (listed instanceof GraphQLError) return [listed];
    const document = this.document(request.query);
    if (Array.isArray(document)) return document;
    const expanded = this.deps.limits && checkExpansion(document, this.deps.limits);
    if (expanded) return [expanded];
    const beyond = this.deps.limits ? checkShape(measureOperation(document, request.operationName), this.deps.limits) : [];
    if (beyond.length) return beyond;
    const operation = getOperationAST(document, request.operationName ?? undefined);
    if (!operation) {
      return [coded('OPERATION_RESOLUTION_FAILURE', request.operationName ? `no operation named "${request.operationName}" in the document` : 'the document has several operations: name one in "operationName"')];
    }
    const coerced = getVariableValues(this.deps.planner.schema, operation.variableDefinitions ?? [], request.variables ?? {});
    if (coerced.errors) return coerced.errors.map((e) => coded(ErrorCode.BadUserInput, e.message, e));
    const demand = this.deps.demand;
    const overBudget = demand && checkCost(estimateCost(this.schema, demand.directives, document, request.operationName, coerced.coerced, demand.options.defaultListSize), demand.options);
    if (overBudget) return [overBudget];
    return { document, operation, variables: request.variables ?? {} };
  }

  private document(query: string): DocumentNode | GraphQLError[] {
    const known = this.documents.get(query);
    if (known) return known;
    let document: DocumentNode;
    try {
      document = parse(query);
    } catch (error) {
      return [coded('GRAPHQL_PARSE_FAILED', (error as GraphQLError).message)];
    }
    const errors = validate(this.deps.planner.schema, document);
    if (errors.length) return errors.map((e) => coded('GRAPHQL_VALIDATION_FAILED', e.message, e));
    // Only valid, short documents are kept: errors and long texts are what a flood of junk would fill it with.
    if (query.length <= MAX_CACHED_QUERY_CHARS) {
      remember(this.documents, query, document, MAX_CACHED_DOCUMENTS);
    }
    return document;
  }

  /**
   * Starts a prepared subscription, or returns why it is refused. The
   * generator ends when the upstream stream ends; returning from it
   * unsubscribes upstream and frees the limits.
   */
  async start(
    connection: SubscriptionConnection,
    prepared: PreparedOperation,
    request: SubscriptionRequest,
    context: GatewayContext,
  ): Promise<AsyncGenerator<UpstreamEvent> | GraphQLError[]> {
    const authorized = this.deps.authorization && authorizeSubscription(this.deps.authorization, this.schema, prepared.document, request.operationName, context.identity.claims);
    if (authorized?.refused) return authorized.refused;
    if (connection.live >= this.limits.perConnection) {
      return [coded(ErrorCode.RateLimited, `too many live subscriptions on this connection: the limit is ${this.limits.perConnection}; end one before starting another`, undefined, { limit: this.limits.perConnection, scope: 'connection' })];
    }
    let plan;
    try {
      // With rate limits on, the stream's real usage is fetched too, to correct its token charge.
      const document = authorized?.document ?? prepared.document;
      plan = this.deps.planner.plan(this.deps.gate ? withStreamUsage(document) : document, request.operationName);
    } catch (error) {
      requestLog(this.deps.log, context).error('subscription planning failed', { error });
      return [coded(ErrorCode.InternalServerError, `the subscription could not be planned: ${(error as Error).message}`)];
    }
    // Counted before waiting for the gate, so concurrent starts on one connection cannot pass its limit together.
    connection.live++;
    const admitted = this.deps.gate && (await this.deps.gate.admit(context, prepared.document, request.operationName, prepared.variables));
    if (admitted && isStreamRefusal(admitted)) {
      connection.live--;
      return admitted.refused;
    }
    gatewayMetrics.subscriptionStarted();
    const release = () => {
      connection.live--;
      gatewayMetrics.subscriptionEnded();
      admitted?.end();
    };
    const deps = { ...this.deps, upstream: connection.upstream };
    const log = requestLog(this.deps.log, context);
    const authorizedEvents = authorized?.events ?? (<T>(events: AsyncGenerator<T>) => events);
    const unsubscribe = new AbortController();
    const events = authorizedEvents((async function* () {
      try {
        for await (const event of executeFederatedSubscription(deps, {
          plan,
          query: request.query,
          variables: prepared.variables,
          operationName: request.operationName ?? undefined,
          context,
          signal: unsubscribe.signal,
        })) {
          admitted?.observe(event);
          yield event;
        }
      } catch (error) {
        log.warn('subscription ended by its upstream', { error: (error as Error).message });
        yield { errors: [coded(ErrorCode.ServiceUnavailable, (error as Error).message).toJSON()] };
      }
    })());
    // return() must reach the upstream subscription at once, not after its next event.
    return interruptible(events, { interrupt: () => unsubscribe.abort(), end: release });
  }
}

function coded(code: string, message: string, source?: GraphQLError, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { nodes: source?.nodes, extensions: { ...extensions, code } });
}
