/**
 * Deduplication of inbound operations: identical queries in flight at the
 * same time are executed once and every caller gets the result. It wraps the
 * gateway's executor, so everything per request — authentication, rate
 * limits, operation limits, authorization filtering, the response cache —
 * still runs for each caller; planning, fetching and serializing the answer
 * (gateway/pipeline/serialized-results.ts) are shared.
 *
 * Identical means the same document (its hash after authorization filtered
 * it for the caller), operation name and variables, AND the same audience:
 * a public operation (see public-operations.ts) is shared between all
 * callers; any other only between callers with the same user and scopes.
 * Mutations and subscriptions are never shared.
 */
import type { GatewayExecutionResult, GatewayExecutor, GatewayGraphQLRequestContext, GatewayInterface } from '@apollo/server-gateway-interface';
import type { GatewayContext } from '../auth/context';
import { dedupCounters } from './counters';
import { wasNarrowed } from '../pipeline/operation-state';
import type { PublicOperations } from './public-operations';

interface Shared {
  result: GatewayExecutionResult;
  /**
   * The data as JSON, for the callers of a narrowed document only (see
   * `execute`); the others are all given the same data object, which Apollo
   * Server serializes once for all of them (gateway/pipeline/serialized-results.ts).
   */
  dataJson: string | undefined;
  cacheHint: { maxAge?: number; scope?: unknown };
}

interface Flight {
  joiners: number;
  promise: Promise<Shared>;
}

/** Who may share a result: anyone for a public operation, else one user with one set of scopes. */
export function audienceOf(isPublic: boolean, claims: { sub: string | null; scopes: readonly string[] }): string {
  return isPublic ? 'public' : JSON.stringify(['user', claims.sub, [...claims.scopes].sort()]);
}

export class OperationDedup {
  private readonly flights = new Map<string, Flight>();

  constructor(private readonly publicOperations: PublicOperations) {}

  /** The executor, deduplicating the queries it is given. */
  wrap(executor: GatewayExecutor): GatewayExecutor {
    return (requestContext) => {
      const key = this.keyOf(requestContext);
      return key === undefined ? executor(requestContext) : this.execute(key, requestContext, executor);
    };
  }

  private keyOf(requestContext: GatewayGraphQLRequestContext): string | undefined {
    // No operation: the name asked for is not in the document, an error the gateway's executor reports (not ours to share).
    if (requestContext.operation?.operation !== 'query') return undefined;
    const context = requestContext.context as Partial<GatewayContext>;
    if (!context.identity) return undefined;
    const isPublic = this.publicOperations.isPublic(requestContext.schema, requestContext.document, requestContext.operationName, requestContext.queryHash);
    // A narrowed document's hash is that of its printed text, which a caller may also send as is: the two must not
    // share a flight, since authorization completes a narrowed result in place (see lead).
    const narrowed = wasNarrowed(requestContext.document);
    return JSON.stringify([audienceOf(isPublic, context.identity.claims), requestContext.queryHash, narrowed, requestContext.operationName, requestContext.request.variables ?? {}]);
  }

  private async execute(key: string, requestContext: GatewayGraphQLRequestContext, executor: GatewayExecutor): Promise<GatewayExecutionResult> {
    const running = this.flights.get(key);
    if (running) {
      running.joiners += 1;
      dedupCounters.deduplicatedOperations += 1;
      const shared = await running.promise;
      requestContext.overallCachePolicy.restrict(shared.cacheHint);
      // Authorization completes a narrowed document's result in place, per caller: each of those gets its own copy.
      return { ...shared.result, data: shared.dataJson === undefined ? shared.result.data : JSON.parse(shared.dataJson) };
    }
    const flight: Flight = { joiners: 0, promise: undefined as unknown as Promise<Shared> };
    this.flights.set(key, flight);
    flight.promise = this.lead(key, flight, requestContext, executor);
    return (await flight.promise).result;
  }

  private async lead(key: string, flight: Flight, requestContext: GatewayGraphQLRequestContext, executor: GatewayExecutor): Promise<Shared> {
    let result: GatewayExecutionResult;
    try {
      result = await executor(requestContext);
    } finally {
      // Removed as the result arrives, before anyone else runs: nobody can join after the copy below is (or is not) made.
      this.flights.delete(key);
    }
    const { maxAge, scope } = requestContext.overallCachePolicy;
    // Every caller of one flight has the same document and narrowing (both are in the key): narrowed for all or for none.
    const copied = flight.joiners > 0 && wasNarrowed(requestContext.document);
    return { result, dataJson: copied ? JSON.stringify(result.data) : undefined, cacheHint: { maxAge, scope } };
  }
}

/** The gateway with its executor deduplicating queries; loading, schema updates and stopping are the gateway's own. */
export function deduplicatingGateway(gateway: GatewayInterface, dedup: OperationDedup): GatewayInterface {
  return {
    onSchemaLoadOrUpdate: (callback) => gateway.onSchemaLoadOrUpdate(callback),
    load: async (options) => {
      const loaded = await gateway.load(options);
      return { ...loaded, executor: loaded.executor && dedup.wrap(loaded.executor) };
    },
    stop: () => gateway.stop(),
  };
}
