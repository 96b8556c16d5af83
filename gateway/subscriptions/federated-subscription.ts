/**
 * Executes one federated subscription: the plan's primary fetch runs as a
 * subscription on the owning subgraph, and for every event the plan's `rest`
 * (Flatten/Fetch/Sequence/Parallel nodes) runs through @apollo/gateway's own
 * executor against that event's data. The event enters the executor as the
 * result of a fetch to a per-event data source, so entity fetches, error
 * paths and result shaping are exactly those of queries.
 */
import { executeQueryPlan, type GraphQLDataSource, type ServiceMap } from '@apollo/gateway';
import type { GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import type { FetchNode, PlanNode, QueryPlan } from '@apollo/query-planner';
import type { GraphQLFormattedError } from 'graphql';
import type { Logger } from '../../lib/log';
import type { GatewayContext } from '../auth/context';
import type { SubscriptionPlan, SubscriptionPlanner } from './planner';
import type { UpstreamConnections, UpstreamEvent } from './upstream';

/** The name under which each event is fed to the executor; never a real subgraph's. */
const EVENT_SOURCE = '__subscription_event__';

export interface FederatedSubscriptionRequest {
  plan: SubscriptionPlan;
  query: string;
  variables: Record<string, unknown>;
  operationName?: string;
  context: GatewayContext;
  /** Aborted when the client unsubscribes: ends the upstream subscription at once. */
  signal?: AbortSignal;
}

export interface FederatedSubscriptionDeps {
  planner: SubscriptionPlanner;
  /** A data source per subgraph, for the entity fetches of `rest`. */
  services: ServiceMap;
  upstream: UpstreamConnections;
  log: Logger;
}

/**
 * Yields one result per upstream event, in order. Returning from the
 * generator (client unsubscribed or disconnected) unsubscribes upstream.
 */
export async function* executeFederatedSubscription(deps: FederatedSubscriptionDeps, request: FederatedSubscriptionRequest): AsyncGenerator<UpstreamEvent> {
  const { plan } = request;
  const primary = plan.primary;
  const events = deps.upstream.subscribe(
    primary.serviceName,
    {
      query: primary.operation,
      variables: pick(request.variables, primary.variableUsages ?? []),
      operationName: primary.operationName ?? undefined,
    },
    request.signal,
  );
  try {
    for await (const event of events) {
      if (!plan.rest || !event.data) {
        yield event;
        continue;
      }
      yield await resolveRest(deps, request, event);
    }
  } finally {
    await events.return(undefined);
  }
}

async function resolveRest(deps: FederatedSubscriptionDeps, request: FederatedSubscriptionRequest, event: UpstreamEvent): Promise<UpstreamEvent> {
  const { plan } = request;
  const eventFetch: FetchNode = { ...plan.primary, serviceName: EVENT_SOURCE };
  const queryPlan: QueryPlan = { kind: 'QueryPlan', node: { kind: 'Sequence', nodes: [eventFetch, plan.rest as PlanNode] } };
  const eventSource: GraphQLDataSource = { process: async () => ({ data: event.data, errors: event.errors as never }) };
  const requestContext = {
    request: { query: request.query, variables: request.variables, operationName: request.operationName },
    context: request.context,
    logger: deps.log,
    metrics: {},
  } as unknown as GatewayGraphQLRequestContext;
  const result = await executeQueryPlan(queryPlan, { ...deps.services, [EVENT_SOURCE]: eventSource }, requestContext, plan.operationContext, deps.planner.supergraphSchema, deps.planner.apiSchema);
  const errors = result.errors?.map((e) => renameEventSource(e.toJSON(), plan.primary.serviceName));
  return errors?.length ? { data: result.data as Record<string, unknown> | null, errors } : { data: result.data as Record<string, unknown> | null };
}

/** Errors of the event itself are the primary subgraph's, whatever name fed them in. */
function renameEventSource(error: GraphQLFormattedError, subgraph: string): GraphQLFormattedError {
  if (error.extensions?.serviceName !== EVENT_SOURCE) return error;
  return { ...error, extensions: { ...error.extensions, serviceName: subgraph } };
}

function pick(variables: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const name of names) if (name in variables) picked[name] = variables[name];
  return picked;
}
