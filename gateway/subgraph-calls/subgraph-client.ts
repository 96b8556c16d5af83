/**
 * How the gateway talks to one subgraph: a pool of keep-alive connections
 * (undici), a deadline per call, bounded retries with backoff (queries, and
 * mutations that never reached the subgraph), a circuit breaker, and — when enabled — deduplication of identical
 * query fetches in flight. Its `fetch` is what the subgraph's data source
 * uses as its `fetcher`, so everything Apollo does around a fetch (headers,
 * parsing, cache hints) stays as it is.
 */
import { STATUS_CODES } from 'node:http';
import type { Fetcher, FetcherRequestInit } from '@apollo/utils.fetcher';
import { Pool } from 'undici';
import { CircuitBreaker } from '../../lib/circuit-breaker';
import type { FetchDedup } from '../dedup/fetch-dedup';
import { BufferedResponse, ResponseHeaders } from './buffered-response';
import { SubgraphCallError } from './call-error';
import { isQueryFetch } from './fetch-kind';
import type { SubgraphCallSettings } from './settings';

/** Statuses a proxy or a restarting service answers with: worth another try for a query. */
const RETRYABLE_STATUS = new Set([502, 503, 504]);

class AttemptTimedOut extends Error {}
/** The subgraph stopped answering: a query outlived `stallMs`, and so did a health probe. */
class SubgraphStalled extends Error {}

export interface SubgraphClientOptions {
  dedup?: FetchDedup;
  /** Waits between attempts; tests pass one that does not wait. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export class SubgraphClient {
  private readonly breaker: CircuitBreaker;
  private readonly pool: Pool;
  /** One connection of its own for health probes, so that a pool full of stuck calls cannot hold a probe back. */
  private readonly probes: Pool;
  /** Query attempts in flight, ended together when the subgraph is found stuck. */
  private readonly queries = new Set<AbortController>();
  private stallCheck: Promise<void> | undefined;
  private readonly origin: string;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly now: () => number;

  constructor(
    readonly service: string,
    url: string,
    private readonly settings: SubgraphCallSettings,
    private readonly options: SubgraphClientOptions = {},
  ) {
    this.origin = new URL(url).origin;
    this.pool = new Pool(this.origin, { connections: settings.connections, keepAliveTimeout: settings.keepAliveMs, pipelining: 1 });
    this.probes = new Pool(this.origin, { connections: 1, keepAliveTimeout: settings.keepAliveMs, pipelining: 1 });
    this.breaker = new CircuitBreaker({ failureThreshold: settings.breakerFailures, openMs: settings.breakerOpenMs, now: options.now });
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  readonly fetch: Fetcher = async (url, init = {}) => {
    const query = isQueryFetch(init.body);
    if (query && this.options.dedup) return this.options.dedup.fetch(url, init, () => this.call(url, init, true));
    return this.call(url, init, query);
  };

  async close(): Promise<void> {
    await Promise.all([this.pool.close(), this.probes.close()]);
  }

  /**
   * One call with its retries, all within one deadline (`timeoutMs` from the
   * first attempt). A query is retried after a connection error or a
   * 502/503/504; a mutation only when its request never reached the subgraph
   * (`neverSent`), so that it cannot run twice. The breaker hears the call's
   * outcome, not each attempt's: behind one address with several replicas (a
   * Kubernetes Service), a dead replica's refused or reset connections are
   * retried onto a live one, and counting them would open the breaker on
   * the healthy replicas too. When every replica is down, every call fails
   * after its retries, and the threshold of such calls still opens it.
   */
  private async call(url: string, init: FetcherRequestInit, query: boolean): Promise<BufferedResponse> {
    const permit = this.breaker.tryAcquire();
    if (!permit) throw this.circuitOpen(0);
    const deadline = this.now() + this.settings.timeoutMs;
    for (let attempt = 1; ; attempt++) {
      let failure: SubgraphCallError;
      let retryable: boolean;
      try {
        const response = await this.attempt(url, init, query, deadline - this.now());
        if (!RETRYABLE_STATUS.has(response.status)) {
          this.breaker.record(permit, response.status < 500);
          return response;
        }
        failure = new SubgraphCallError(
          this.service,
          'BAD_GATEWAY',
          `subgraph "${this.service}" is unavailable: ${url} answered ${response.status} ${response.statusText} (${attemptsText(attempt)})`,
          attempt,
        );
        // The subgraph answered: a mutation may have run.
        retryable = query;
      } catch (error) {
        failure = this.failed(url, error, attempt);
        retryable = failure.reason === 'CONNECTION_FAILED' && (query || neverSent(error));
      }
      const pause = this.backoffMs(attempt);
      // The breaker opened meanwhile (other calls failed too): the whole subgraph is down, not one replica.
      if (!retryable || attempt > this.settings.retries || this.now() + pause >= deadline || this.breaker.state === 'open') {
        this.breaker.record(permit, false);
        throw failure;
      }
      await this.sleep(pause);
    }
  }

  /** One request on the pool, read to its end within `timeoutMs` (what is left of the call's deadline); a query still out after `stallMs` checks the subgraph answers at all. */
  private async attempt(url: string, init: FetcherRequestInit, query: boolean, timeoutMs: number): Promise<BufferedResponse> {
    const target = new URL(url);
    if (target.origin !== this.origin) throw new Error(`subgraph "${this.service}" client serves ${this.origin}, not ${target.origin}`);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new AttemptTimedOut()), timeoutMs);
    const { stallMs } = this.settings;
    const stallTimer = query && stallMs > 0 && stallMs < timeoutMs ? setTimeout(() => this.checkStalled(), stallMs) : undefined;
    if (query) this.queries.add(controller);
    try {
      const { statusCode, headers, body } = await this.pool.request({
        path: target.pathname + target.search,
        method: (init.method ?? 'GET') as 'POST',
        headers: init.headers,
        body: init.body,
        signal: controller.signal,
      });
      const bytes = Buffer.from(await body.arrayBuffer());
      // Apollo names the URL in the error of a failed response.
      return new BufferedResponse(statusCode, STATUS_CODES[statusCode] ?? '', ResponseHeaders.from(headers), bytes, url);
    } catch (error) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : undefined;
      throw reason instanceof AttemptTimedOut || reason instanceof SubgraphStalled ? reason : error;
    } finally {
      clearTimeout(timer);
      clearTimeout(stallTimer);
      this.queries.delete(controller);
    }
  }

  /**
   * A query has waited `stallMs`: the subgraph is slow, or it stopped
   * answering (a frozen process keeps its sockets open, so its calls would
   * sit out the whole deadline, 30 s by default, and only then open the
   * breaker). One health probe at a time tells the two apart: any HTTP
   * answer, even a 404 from a subgraph without /health, shows it is serving;
   * none within `stallMs` trips the breaker and ends every query in flight at
   * once, so their callers get the other subgraphs' data now and later ones
   * fail fast until a half-open probe finds the subgraph back. Mutations are
   * left to their deadline: whether they ran is not known.
   */
  private checkStalled(): void {
    this.stallCheck ??= this.answersHealthProbe()
      .then((alive) => {
        if (alive) return;
        this.breaker.trip();
        for (const controller of this.queries) controller.abort(new SubgraphStalled());
      })
      .finally(() => (this.stallCheck = undefined));
  }

  private async answersHealthProbe(): Promise<boolean> {
    try {
      const { body } = await this.probes.request({ path: '/health', method: 'GET', signal: AbortSignal.timeout(this.settings.stallMs) });
      await body.dump();
      return true;
    } catch {
      return false;
    }
  }

  private failed(url: string, error: unknown, attempt: number): SubgraphCallError {
    if (error instanceof SubgraphStalled) {
      return new SubgraphCallError(
        this.service,
        'TIMEOUT',
        `subgraph "${this.service}" stopped answering: ${url} gave nothing for ${this.settings.stallMs} ms, and neither did ${this.origin}/health (GATEWAY_SUBGRAPH_STALL_MS)`,
        attempt,
      );
    }
    if (error instanceof AttemptTimedOut) {
      return new SubgraphCallError(this.service, 'TIMEOUT', `subgraph "${this.service}" did not answer ${url} within ${this.settings.timeoutMs} ms (GATEWAY_SUBGRAPH_TIMEOUT_MS)`, attempt);
    }
    const cause = error as { code?: string; message?: string };
    const why = cause.code ? `${cause.code}: ${cause.message}` : String(cause.message ?? error);
    return new SubgraphCallError(this.service, 'CONNECTION_FAILED', `subgraph "${this.service}" is unavailable: the connection to ${url} failed (${why}; ${attemptsText(attempt)})`, attempt);
  }

  private circuitOpen(attempts: number): SubgraphCallError {
    const retryAfterMs = this.breaker.retryAfterMs();
    return new SubgraphCallError(
      this.service,
      'CIRCUIT_OPEN',
      `subgraph "${this.service}" is unavailable: its circuit breaker is open after ${this.settings.breakerFailures} failures in a row; the next try goes in ${retryAfterMs} ms`,
      attempts,
      retryAfterMs,
    );
  }

  /** Doubles from `retryBackoffMs`, each pause drawn from its upper half so that callers do not retry in step. */
  private backoffMs(attempt: number): number {
    const ceiling = this.settings.retryBackoffMs * 2 ** (attempt - 1);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }
}

/**
 * Connection errors that prove the request never reached the subgraph: no
 * connection was made (refused, unreachable, unresolved, timed out
 * connecting), or the connection closed before a byte was written on it.
 * Anything else (a reset after sending, a replica killed mid-request) may
 * have left the operation run.
 */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

function neverSent(error: unknown): boolean {
  const cause = error as { code?: unknown; socket?: { bytesWritten?: unknown } } | null;
  return NOT_CONNECTED.has(String(cause?.code)) || cause?.socket?.bytesWritten === 0;
}

function attemptsText(attempts: number): string {
  return attempts === 1 ? '1 attempt' : `${attempts} attempts`;
}

/** One client per subgraph, shared by every data source of that subgraph (operations and subscription events alike). */
export class SubgraphClients {
  private readonly clients = new Map<string, SubgraphClient>();

  constructor(
    private readonly settingsFor: (service: string) => SubgraphCallSettings,
    private readonly options: SubgraphClientOptions = {},
  ) {}

  for(service: string, url: string): SubgraphClient {
    const key = `${service} ${url}`;
    let client = this.clients.get(key);
    if (!client) {
      client = new SubgraphClient(service, url, this.settingsFor(service), this.options);
      this.clients.set(key, client);
    }
    return client;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.values()].map((client) => client.close()));
  }
}
