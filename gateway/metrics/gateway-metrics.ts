/**
 * The gateway's Prometheus metrics, in one registry of their own (not
 * prom-client's global one, which a library could also write to), and the
 * functions the rest of the gateway calls to record what it did. Names follow
 * Prometheus conventions: `sluice_gateway_` prefix, base units (seconds),
 * `_total` on counters. Labels are bounded: operation names come from
 * clients, so only the first `maxOperationNames` distinct ones get a label of
 * their own and the rest share `(other)`.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { envInt } from '../../lib/config';
import { dedupCounters } from '../dedup/counters';
import { BoundHistogram } from './bound-histogram';

/** Seconds, from half a millisecond (a cached or deduplicated answer) to ten seconds. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Estimated costs, from a single object to a million (the default budget is 5000). */
const COST_BUCKETS = [1, 10, 100, 1_000, 5_000, 10_000, 100_000, 1_000_000];

/** Operation-name labels that no client-chosen name can take: GraphQL names never contain parentheses. */
export const UNNAMED_OPERATION = '(unnamed)';
export const OTHER_OPERATION = '(other)';
/** A request that failed before its operation was known (a parse or validation error, a missing operation). */
export const UNRESOLVED_OPERATION = '(unresolved)';

export type OperationType = 'query' | 'mutation' | 'subscription' | 'unknown';
/** `ok`, or the `extensions.code` of the response's first error. */
export type Outcome = string;
/** Which limit refused a request: `rpm`, `tpm`, `streams`, … as the rate limiter names them. */
export type RateLimitKind = string;
export type CacheName = 'response' | 'apq';
export type CacheResult = 'hit' | 'miss';

export interface GatewayMetricsOptions {
  /** Distinct operation names labelled before the rest are counted as `(other)`. */
  maxOperationNames?: number;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly operationNames = new Set<string>();
  private readonly maxOperationNames: number;
  private processMetrics = false;

  private readonly operationDuration = new BoundHistogram(
    'sluice_gateway_operation_duration_seconds',
    'GraphQL operations handled by the gateway (HTTP and WebSocket), by operation name, type and outcome (ok or the first error code), from request to response',
    ['operation', 'type', 'outcome'],
    LATENCY_BUCKETS,
    this.registry,
  );

  private readonly httpDuration = new BoundHistogram(
    'sluice_gateway_http_request_duration_seconds',
    'HTTP requests to /graphql by status code, including those refused before an operation was read (401, 413, 429, 503)',
    ['status'],
    LATENCY_BUCKETS,
    this.registry,
  );

  private readonly subgraphFetchDuration = new BoundHistogram(
    'sluice_gateway_subgraph_fetch_duration_seconds',
    'Fetches from the gateway to each subgraph by outcome (ok, errors: the subgraph answered with GraphQL errors, failed: no answer)',
    ['subgraph', 'outcome'],
    LATENCY_BUCKETS,
    this.registry,
  );

  private readonly liveSubscriptions = new Gauge({
    name: 'sluice_gateway_live_subscriptions',
    help: 'Subscriptions running now (graphql-ws and multipart HTTP)',
    registers: [this.registry],
  });

  private readonly rateLimited = new Counter({
    name: 'sluice_gateway_rate_limited_total',
    help: 'Requests and streams refused with RATE_LIMITED, by the scope that was limited (key, user, ip, connection, …) and the limit (rpm, tpm, streams, …)',
    labelNames: ['scope', 'limit'] as const,
    registers: [this.registry],
  });

  private readonly staleCredentials = new Counter({
    name: 'sluice_gateway_credentials_stale_answers_total',
    help: "Credentials checked against auth's earlier answer because auth could not be asked (gateway/auth, GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS), by credential (api-key, session) and why auth could not be asked",
    labelNames: ['credential', 'reason'] as const,
    registers: [this.registry],
  });

  private readonly operationCost = new BoundHistogram(
    'sluice_gateway_operation_estimated_cost',
    'Estimated cost of each operation (gateway/demand-control), by mode (enforce: over budget is refused; measure: only recorded) and result (ok, or over the budget)',
    ['mode', 'result'],
    COST_BUCKETS,
    this.registry,
  );

  private readonly cacheLookups = new Counter({
    name: 'sluice_gateway_cache_lookups_total',
    help: 'Look-ups in the response cache and the persisted-query (APQ) store, by result; hit ratio = hit / (hit + miss)',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry],
  });

  constructor(options: GatewayMetricsOptions = {}) {
    this.maxOperationNames = options.maxOperationNames ?? 500;
    new Counter({
      name: 'sluice_gateway_deduplicated_total',
      help: 'Subgraph fetches (fetch) and inbound operations (operation) answered by sharing an identical one already in flight instead of running again',
      labelNames: ['kind'] as const,
      registers: [this.registry],
      // gateway/dedup keeps its own monotonic counts; they are read when scraped rather than pushed on every share.
      collect() {
        this.reset();
        this.inc({ kind: 'fetch' }, dedupCounters.deduplicatedFetches);
        this.inc({ kind: 'operation' }, dedupCounters.deduplicatedOperations);
      },
    });
  }

  /** Adds Node's process metrics (CPU, memory, event-loop lag, GC, handles) under `sluice_gateway_`; once. */
  enableProcessMetrics(): void {
    if (this.processMetrics) return;
    this.processMetrics = true;
    collectDefaultMetrics({ register: this.registry, prefix: 'sluice_gateway_' });
  }

  /** The label for an operation name: the name itself while there is room, else `(other)`. */
  operationLabel(name: string | null | undefined): string {
    if (!name) return UNNAMED_OPERATION;
    if (this.operationNames.has(name)) return name;
    if (this.operationNames.size >= this.maxOperationNames) return OTHER_OPERATION;
    this.operationNames.add(name);
    return name;
  }

  recordOperation(operation: string, type: OperationType, outcome: Outcome, seconds: number): void {
    this.operationDuration.observe(seconds, operation, type, outcome);
  }

  recordHttpRequest(status: number, seconds: number): void {
    this.httpDuration.observe(seconds, String(status));
  }

  recordSubgraphFetch(subgraph: string, outcome: 'ok' | 'errors' | 'failed', seconds: number): void {
    this.subgraphFetchDuration.observe(seconds, subgraph, outcome);
  }

  subscriptionStarted(): void {
    this.liveSubscriptions.inc();
  }

  subscriptionEnded(): void {
    this.liveSubscriptions.dec();
  }

  /** A refusal with RATE_LIMITED: `scope` is who was limited (key, user, ip, connection), `limit` which limit (rpm, tpm, streams). */
  recordRateLimitRefusal(scope: string, limit: RateLimitKind): void {
    this.rateLimited.inc({ scope, limit });
  }

  /** A credential served on auth's earlier answer while auth could not be asked; `reason` is why (CONNECTION_FAILED, TIMEOUT, …). */
  recordStaleCredential(credential: 'api-key' | 'session', reason: string): void {
    this.staleCredentials.inc({ credential, reason });
  }

  /** An operation's estimated cost: `mode` is whether the budget is enforced, `result` whether the estimate is within it. */
  recordOperationCost(mode: 'enforce' | 'measure', result: 'ok' | 'over', estimated: number): void {
    this.operationCost.observe(estimated, mode, result);
  }

  recordCacheLookup(cache: CacheName, result: CacheResult): void {
    this.cacheLookups.inc({ cache, result });
  }

  /** The Prometheus text exposition of this registry. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * The gateway process's metrics. One per process because Prometheus scrapes
 * processes: the modules that count things import it rather than have it
 * threaded through every constructor.
 */
export const gatewayMetrics = new GatewayMetrics({ maxOperationNames: envInt('GATEWAY_METRICS_MAX_OPERATIONS', 500, { min: 1 }) });
