/**
 * A query plan compiled into closures, once per plan: what @apollo/gateway's
 * `executeQueryPlan` (executeQueryPlan.ts) does per request — turning the
 * document back into an `Operation`, walking the plan, building each entity
 * fetch's representations by interpreting its `requires` selection, and
 * shaping the result by walking the operation — is done here ahead, so a
 * request runs the fetches, merges what they return and shapes it.
 *
 * Semantics are stock's, line for line where they show in the answer: the
 * entities a fetch sees, its variables and representations (same keys, same
 * order), the merge (stock's `deepMerge`), the errors (downstream service
 * errors with their paths, thrown errors as stock collects them) and the
 * answer's shape (`shape.ts`, falling back to stock's `computeResponse`).
 * What it does not compile — `@defer`, subscriptions, `contextRewrites`
 * (`@fromContext`), schema introspection — makes {@link compilePlan} return
 * undefined and the caller run stock's executor.
 */
import type { GraphQLDataSource } from '@apollo/gateway/dist/datasources/types';
import { GraphQLDataSourceRequestKind } from '@apollo/gateway/dist/datasources/types';
import { applyRewrites, isObjectOfType } from '@apollo/gateway/dist/dataRewrites';
import { computeResponse } from '@apollo/gateway/dist/resultShaping';
import { deepMerge } from '@apollo/gateway/dist/utilities/deepMerge';
import { generateHydratedPaths } from '@apollo/gateway/dist/executeQueryPlan';
import { ERRORS, errorCodeDef, type Operation } from '@apollo/federation-internals';
import { type ConditionNode, evaluateCondition, type FetchNode, type PlanNode, type QueryPlan, type QueryPlanSelectionNode, type ResponsePath } from '@apollo/query-planner';
import type { GatewayExecutionResult, GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { GraphQLError, type GraphQLFormattedError, type GraphQLSchema } from 'graphql';
import { compileShaper, type Shaper } from './shape';

/** What one execution works with. */
interface Run {
  services: Record<string, GraphQLDataSource>;
  requestContext: GatewayGraphQLRequestContext;
  /** Stock collects downstream errors and whatever a fetch throws, in the order they happen. */
  errors: unknown[];
}

interface Cursor {
  path: ResponsePath;
  data: unknown;
  fullResult: Record<string, unknown>;
}

type Step = (run: Run, cursor: Cursor) => Promise<void>;

/** A plan ready to run. */
export interface CompiledPlan {
  execute(services: Record<string, GraphQLDataSource>, requestContext: GatewayGraphQLRequestContext): Promise<GatewayExecutionResult>;
}

/** Signals a plan node this module does not compile. */
class NotCompiled extends Error {}

/**
 * Compiles `plan` for `operation` (stock's `Operation` of the request's document over the API schema); undefined when some
 * part of it is not compiled (see the module comment), in which case the caller runs stock's executor.
 */
export function compilePlan(plan: QueryPlan, operation: Operation, supergraphSchema: GraphQLSchema): CompiledPlan | undefined {
  const shaper = compileShaper(operation);
  if (!shaper) return undefined;
  let root: Step | undefined;
  try {
    if (plan.node?.kind === 'Subscription') return undefined;
    root = plan.node && compileNode(plan.node, operation, supergraphSchema);
  } catch (error) {
    if (error instanceof NotCompiled) return undefined;
    throw error;
  }
  return {
    async execute(services, requestContext) {
      const run: Run = { services, requestContext, errors: [] };
      const data: Record<string, unknown> = Object.create(null);
      if (root) await root(run, { path: [], data, fullResult: data });
      return respond(run, data, shaper, operation);
    },
  };
}

function compileNode(node: PlanNode, operation: Operation, schema: GraphQLSchema): Step {
  switch (node.kind) {
    case 'Sequence': {
      const steps = node.nodes.map((n) => compileNode(n, operation, schema));
      return async (run, cursor) => {
        for (const step of steps) await step(run, cursor);
      };
    }
    case 'Parallel': {
      const steps = node.nodes.map((n) => compileNode(n, operation, schema));
      return async (run, cursor) => {
        await Promise.all(steps.map((step) => step(run, cursor)));
      };
    }
    case 'Flatten': {
      const { path } = node;
      const inner = compileNode(node.node, operation, schema);
      return async (run, cursor) => {
        const data = flattenAt(cursor.data, path, 0);
        // Stock's moveIntoCursor: no data there (null, undefined), nothing to run; an empty list still runs (and fetches nothing).
        if (data) await inner(run, { path: cursor.path.concat(path), data, fullResult: cursor.fullResult });
      };
    }
    case 'Fetch':
      return compileFetch(node, schema);
    case 'Condition':
      return compileCondition(node, operation, schema);
    default:
      throw new NotCompiled(node.kind);
  }
}

function compileCondition(node: ConditionNode, operation: Operation, schema: GraphQLSchema): Step {
  const ifClause = node.ifClause && compileNode(node.ifClause, operation, schema);
  const elseClause = node.elseClause && compileNode(node.elseClause, operation, schema);
  return async (run, cursor) => {
    const branch = evaluateCondition(node, operation.variableDefinitions, run.requestContext.request.variables) ? ifClause : elseClause;
    if (branch) await branch(run, cursor);
  };
}

/** Stock's flattenResultsAtPath, without copying the rest of the path at each level. */
function flattenAt(value: unknown, path: ResponsePath, at: number): unknown {
  if (at === path.length || value === undefined || value === null) return value;
  const current = path[at];
  if (current === '@') {
    // Stock calls value.flatMap: a non-list here fails as it does.
    if (!Array.isArray(value)) throw new TypeError('value.flatMap is not a function');
    const flattened: unknown[] = [];
    for (const element of value) {
      const inner = flattenAt(element, path, at + 1);
      if (Array.isArray(inner)) for (const item of inner) flattened.push(item);
      else flattened.push(inner);
    }
    return flattened;
  }
  if (typeof current !== 'string') throw new Error(`Unexpected ${typeof current} found in path`);
  if (Array.isArray(value)) throw new Error(`Unexpected array in result for path element ${current}`);
  const object = value as Record<string, unknown>;
  return flattenAt(Object.hasOwn(object, current) ? object[current] : undefined, path, at + 1);
}

type Representer = (source: unknown) => Record<string, unknown> | null;

function compileFetch(fetch: FetchNode, schema: GraphQLSchema): Step {
  if (fetch.contextRewrites?.length) throw new NotCompiled('contextRewrites');
  const represent = fetch.requires && compileRepresentation(fetch.requires, schema);
  const usages = fetch.variableUsages ?? [];
  const request = (run: Run, cursor: Cursor, variables: Record<string, unknown>) => send(run, cursor, fetch, variables);

  const execute = async (run: Run, cursor: Cursor): Promise<void> => {
    if (!run.services[fetch.serviceName]) throw new Error(`Couldn't find service with name "${fetch.serviceName}"`);
    const entities: unknown[] = Array.isArray(cursor.data) ? cursor.data.filter((e) => e !== null && e !== undefined) : [cursor.data];
    if (entities.length < 1) return;
    const variables: Record<string, unknown> = Object.create(null);
    const provided = run.requestContext.request.variables;
    for (const name of usages) {
      if (provided && Object.hasOwn(provided, name) && provided[name] !== undefined) variables[name] = provided[name];
    }
    if (!represent) {
      const received = await request(run, cursor, variables);
      if (received && fetch.outputRewrites) applyRewrites(schema, fetch.outputRewrites, received);
      for (const entity of entities) deepMerge(entity, received);
      return;
    }
    const representations: Record<string, unknown>[] = [];
    const representationToEntity: number[] = [];
    for (let i = 0; i < entities.length; i++) {
      const representation = represent(entities[i]);
      if (representation?.__typename) {
        if (fetch.inputRewrites) applyRewrites(schema, fetch.inputRewrites, representation);
        representations.push(representation);
        representationToEntity.push(i);
      }
    }
    if (representations.length < 1) return;
    if ('representations' in variables) throw new Error('Variables cannot contain key "representations"');
    const received = await request(run, cursor, { ...variables, representations });
    if (!received) return;
    const receivedEntities = received._entities;
    if (!(receivedEntities && Array.isArray(receivedEntities))) throw new Error('Expected "data._entities" in response to be an array');
    if (receivedEntities.length !== representations.length) throw new Error(`Expected "data._entities" to contain ${representations.length} elements`);
    // Stock's loop runs to the number of entities, not of representations; past the representations it merges nothing.
    for (let i = 0; i < entities.length; i++) {
      const receivedEntity = receivedEntities[i] as Record<string, unknown> | null | undefined;
      const entity = entities[representationToEntity[i]] as Record<string, unknown>;
      if (receivedEntity && !receivedEntity.__typename) receivedEntity.__typename = entity.__typename;
      if (fetch.outputRewrites) applyRewrites(schema, fetch.outputRewrites, receivedEntity as Record<string, unknown>);
      deepMerge(entity, receivedEntity);
    }
  };

  return async (run, cursor) => {
    try {
      await execute(run, cursor);
    } catch (error) {
      run.errors.push(error);
    }
  };
}

/** Sends one fetch; records its errors as stock does (downstream service errors, and the paths of errors without a federated trace). */
async function send(run: Run, cursor: Cursor, fetch: FetchNode, variables: Record<string, unknown>): Promise<Record<string, unknown> | null | undefined> {
  const { requestContext } = run;
  const response = await run.services[fetch.serviceName].process({
    kind: GraphQLDataSourceRequestKind.INCOMING_OPERATION,
    request: { query: fetch.operation, variables, operationName: fetch.operationName, http: undefined },
    incomingRequestContext: requestContext,
    context: requestContext.context,
    document: fetch.operationDocumentNode,
    pathInIncomingRequest: cursor.path,
  });
  if (response.errors) {
    const pathOf = errorPaths(fetch, cursor);
    for (const error of response.errors) run.errors.push(downstreamServiceError(error, fetch.serviceName, pathOf));
    if (!response.extensions?.ftv1) {
      const paths = response.errors.map((error) => ({ subgraph: fetch.serviceName, path: error.path }));
      const metrics = requestContext.metrics as { nonFtv1ErrorPaths?: { subgraph: string; path: unknown }[] };
      if (metrics.nonFtv1ErrorPaths) metrics.nonFtv1ErrorPaths.push(...paths);
      else metrics.nonFtv1ErrorPaths = paths;
    }
  }
  return response.data;
}

/** Stock's makeLazyErrorPathGenerator: an entity fetch's `_entities.N` becomes the path of entity N in the response. */
function errorPaths(fetch: FetchNode, cursor: Cursor): (path: ReadonlyArray<string | number> | undefined) => (string | number)[] | undefined {
  let hydrated: (string | number)[][] | undefined;
  return (path) => {
    if (fetch.requires && typeof path?.[1] === 'number') {
      if (!hydrated) {
        hydrated = [];
        generateHydratedPaths([], cursor.path, cursor.fullResult, hydrated);
      }
      return [...(hydrated[path[1]] ?? []), ...path.slice(2)];
    }
    return path ? [...cursor.path, ...path] : undefined;
  };
}

/** Stock's downstreamServiceError. */
function downstreamServiceError(original: GraphQLFormattedError, serviceName: string, pathOf: (path: ReadonlyArray<string | number> | undefined) => (string | number)[] | undefined): GraphQLError {
  const message = original.message || `Error while fetching subquery from service "${serviceName}"`;
  const { extensions } = original;
  const options = { originalError: original as Error, path: pathOf(original.path), extensions: { ...extensions, serviceName } };
  const codeDef = errorCodeDef(original as GraphQLError);
  if (!codeDef && extensions?.code) return new GraphQLError(message, options);
  return (codeDef ?? ERRORS.DOWNSTREAM_SERVICE_ERROR).err(message, options);
}

/**
 * Stock's executeSelectionSet over a `requires` selection, compiled: the representation of an entity, or null when a
 * required field is missing. Keys come out in the selection's order, as stock's do, so subgraphs get the same request bodies.
 */
function compileRepresentation(selections: QueryPlanSelectionNode[], schema: GraphQLSchema): Representer {
  type Part = (source: Record<string, unknown>, result: Record<string, unknown>) => boolean;
  const parts: Part[] = selections.map((selection): Part => {
    if (selection.kind === 'Field') {
      const name = selection.alias ?? selection.name;
      const sub = selection.selections && compileRepresentation(selection.selections, schema);
      return (source, result) => {
        if (!Object.hasOwn(source, name)) return false;
        const value = source[name];
        if (value === undefined) return false;
        if (Array.isArray(value)) result[name] = sub ? value.map(sub) : value.map((v) => v);
        else result[name] = sub ? sub(value) : value;
        return true;
      };
    }
    const { typeCondition } = selection;
    const sub = compileRepresentation(selection.selections, schema);
    return (source, result) => {
      if (typeCondition && isObjectOfType(schema, source, typeCondition)) deepMerge(result, sub(source));
      return true;
    };
  });
  return (source) => {
    if (source === null) return null;
    const result: Record<string, unknown> = Object.create(null);
    for (const part of parts) if (!part(source as Record<string, unknown>, result)) return null;
    return result;
  };
}

/** Stock's post-processing: the shaped data, with the errors collected during execution. */
function respond(run: Run, input: Record<string, unknown>, shaper: Shaper, operation: Operation): GatewayExecutionResult {
  const { errors } = run;
  const variables = run.requestContext.request.variables;
  let data: Record<string, unknown> | null;
  try {
    data = shaper.shape(input, variables);
  } catch {
    // NOT_PLAIN, or anything the compiled shaper did not foresee: stock's shaping decides, as it would have.
    return stockShaping(errors, input, operation, variables);
  }
  return errors.length === 0 ? { data } : { errors: errors as GraphQLError[], data };
}

/** Stock's shaping and its handling of what shaping reports or throws, for the responses `shape.ts` leaves to it. */
function stockShaping(errors: unknown[], input: Record<string, unknown>, operation: Operation, variables: Record<string, unknown> | undefined): GatewayExecutionResult {
  try {
    const shaped = computeResponse({
      operation,
      variables,
      input,
      introspectionHandling: () => {
        throw new Error('schema introspection is not compiled');
      },
    });
    if (errors.length === 0 && shaped.errors.length > 0) return { extensions: { valueCompletion: shaped.errors }, data: shaped.data };
    return errors.length === 0 ? { data: shaped.data } : { errors: errors as GraphQLError[], data: shaped.data };
  } catch (error) {
    if (error instanceof GraphQLError) return { errors: [error] };
    if (error instanceof Error) return { errors: [new GraphQLError(error.message, { originalError: error })] };
    return { errors: [new GraphQLError('Unexpected error during query plan execution')] };
  }
}
