/**
 * `compiledPlanGateway(gateway)`: the same `ApolloGateway` — it loads the
 * supergraph, plans (its query planner and plan cache) and owns the subgraph
 * data sources (signing, pools, retries, fetch dedup, metrics all stay) — but
 * each cached plan runs through an executor compiled once for it (`plan.ts`)
 * instead of stock's generic `executeQueryPlan`.
 *
 * The executor reads the gateway's own state (schema, plan cache, data
 * sources), which @apollo/gateway keeps in members TypeScript calls private:
 * {@link GatewayState} names the few it reads, and if the installed version
 * lacks one, every operation goes to stock's executor. A plan not cached yet
 * is built by the gateway's planner and cached as stock does. Stock's executor
 * runs the operations this one would answer differently: usage-reporting
 * traces, the query-plan debug header, `experimental_didResolveQueryPlan`.
 */
import { createHash } from 'node:crypto';
import { type ApolloGateway, buildOperationContext, executeQueryPlan } from '@apollo/gateway';
import type { GraphQLDataSource } from '@apollo/gateway/dist/datasources/types';
import { operationFromDocument, type Schema } from '@apollo/federation-internals';
import type { QueryPlan, QueryPlanner } from '@apollo/query-planner';
import type { GatewayExecutionResult, GatewayExecutor, GatewayGraphQLRequestContext, GatewayInterface } from '@apollo/server-gateway-interface';
import { type DocumentNode, type GraphQLError, type GraphQLSchema, Kind } from 'graphql';
import { type CompiledPlan, compilePlan } from './plan';
import type { PlanExecutor } from './settings';

/** The members of ApolloGateway (2.x) this executor reads; private in its typings. */
interface GatewayState {
  schema?: GraphQLSchema;
  apiSchema?: Schema;
  supergraphSchema?: GraphQLSchema;
  serviceMap: Record<string, { dataSource: GraphQLDataSource }>;
  queryPlanStore: { get(key: string): Promise<QueryPlan | undefined>; set(key: string, plan: QueryPlan): Promise<void> };
  queryPlanner?: QueryPlanner;
  recursiveSelectionsLimitDisabled: boolean;
  nonLocalSelectionsLimitDisabled: boolean;
  logger: { warn(message: string): void };
  config: { debug?: boolean; telemetry?: Parameters<typeof executeQueryPlan>[6]; __exposeQueryPlanExperimental?: boolean };
  experimental_didResolveQueryPlan?: unknown;
  validateIncomingRequest(requestContext: GatewayGraphQLRequestContext, operationContext: ReturnType<typeof buildOperationContext>): GraphQLError[];
}

function stateOf(gateway: ApolloGateway): GatewayState | undefined {
  const state = gateway as unknown as Partial<GatewayState>;
  const complete =
    typeof state.validateIncomingRequest === 'function' &&
    typeof state.queryPlanStore?.get === 'function' &&
    typeof state.queryPlanStore?.set === 'function' &&
    typeof state.serviceMap === 'object' &&
    typeof state.config === 'object' &&
    typeof state.logger?.warn === 'function';
  return complete ? (state as GatewayState) : undefined;
}

/** The gateway Apollo Server gets for the GATEWAY_PLAN_EXECUTOR setting: `gateway` itself for `stock`. */
export function planExecutorGateway(gateway: ApolloGateway, executor: PlanExecutor): GatewayInterface {
  return executor === 'compiled' ? compiledPlanGateway(gateway) : gateway;
}

/** The gateway with each cached plan run by its compiled executor; loading, schema updates and stopping are the gateway's own. */
export function compiledPlanGateway(gateway: ApolloGateway): GatewayInterface {
  return {
    onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
    load: async (options) => {
      const loaded = await gateway.load(options);
      const state = stateOf(gateway);
      return { ...loaded, executor: state && loaded.executor ? compiledExecutor(state, loaded.executor) : loaded.executor };
    },
    stop: () => gateway.stop(),
  };
}

/** Plans are cached by the gateway (keyed by document and operation name) and replaced on a schema update, so each compiles once. */
function compiledExecutor(state: GatewayState, stock: GatewayExecutor): GatewayExecutor {
  // undefined: not compiled (stock runs it).
  const compiled = new WeakMap<QueryPlan, CompiledPlan | undefined>();

  return async (requestContext): Promise<GatewayExecutionResult> => {
    const { schema, apiSchema, supergraphSchema, queryPlanner } = state;
    if (!schema || !apiSchema || !supergraphSchema || !queryPlanner || bypasses(state, requestContext)) return stock(requestContext);
    const { request, document, queryHash } = requestContext;
    const key = request.operationName ? createHash('sha256').update(queryHash).update(request.operationName).digest('hex') : queryHash;
    const operationContext = buildOperationContext({ schema, operationDocument: document, operationName: request.operationName });
    const validationErrors = state.validateIncomingRequest(requestContext, operationContext);
    if (validationErrors.length > 0) return { errors: validationErrors };
    const plan = (await state.queryPlanStore.get(key)) ?? (await planAndStore(state, queryPlanner, apiSchema, requestContext, key));

    let executor = compiled.get(plan);
    if (!compiled.has(plan)) {
      executor = compile(plan, apiSchema, supergraphSchema, operationContext);
      compiled.set(plan, executor);
    }
    const services = Object.create(null) as Record<string, GraphQLDataSource>;
    for (const [name, { dataSource }] of Object.entries(state.serviceMap)) services[name] = dataSource;
    if (!executor) return executeQueryPlan(plan, services, requestContext, operationContext, supergraphSchema, apiSchema, state.config.telemetry);
    return executor.execute(services, requestContext);
  };
}

/** Stock's planning on a cache miss: the same planner, options and cache (a planning failure is thrown, as stock throws it). */
async function planAndStore(state: GatewayState, planner: QueryPlanner, apiSchema: Schema, requestContext: GatewayGraphQLRequestContext, key: string): Promise<QueryPlan> {
  const operation = operationFromDocument(apiSchema, requestContext.document, { operationName: requestContext.request.operationName });
  const plan = planner.buildQueryPlan(operation, { recursiveSelectionsLimitDisabled: state.recursiveSelectionsLimitDisabled, nonLocalSelectionsLimitDisabled: state.nonLocalSelectionsLimitDisabled });
  try {
    await state.queryPlanStore.set(key, plan);
  } catch (err) {
    state.logger.warn(`Could not store queryPlan${(err as Error)?.message || err}`);
  }
  return plan;
}

/** Operations whose answer or side effects stock's executor adds to: traces for usage reporting, the plan in the answer, the plan hook. */
function bypasses(state: GatewayState, requestContext: GatewayGraphQLRequestContext): boolean {
  if (requestContext.metrics?.captureTraces || state.config.debug || state.experimental_didResolveQueryPlan) return true;
  return !!state.config.__exposeQueryPlanExperimental && !!requestContext.request.http?.headers.get('Apollo-Query-Plan-Experimental');
}

/** Stock's Operation for the document (built per request by stock, once per plan here); undefined when it does not build (stock reports why). */
function compile(plan: QueryPlan, apiSchema: Schema, supergraphSchema: GraphQLSchema, operationContext: ReturnType<typeof buildOperationContext>): CompiledPlan | undefined {
  const document: DocumentNode = { kind: Kind.DOCUMENT, definitions: [operationContext.operation, ...Object.values(operationContext.fragments)] };
  try {
    return compilePlan(plan, operationFromDocument(apiSchema, document, { validate: false }), supergraphSchema);
  } catch {
    return undefined;
  }
}
