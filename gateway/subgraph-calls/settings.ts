/**
 * How the gateway calls each subgraph, from the environment. Every setting
 * has one gateway-wide variable; the timeout can also be set per subgraph,
 * since one slow service (a long completion) should not force a long timeout
 * on the others.
 */
import { ConfigError, envInt, envString } from '../../lib/config';

export interface SubgraphCallSettings {
  /** Deadline of one call, retries included, from sending the first attempt to the last byte of the response. */
  timeoutMs: number;
  /** Extra attempts for a query after a connection error or a 502/503/504, for a mutation only when its request never reached the subgraph. */
  retries: number;
  /** Pause before the first retry; doubled before each next one, with jitter. */
  retryBackoffMs: number;
  /** Failures in a row that open the subgraph's circuit breaker. */
  breakerFailures: number;
  /** How long an open breaker refuses calls before it lets one probe through. */
  breakerOpenMs: number;
  /** How long a query may go unanswered before a health probe checks that the subgraph answers at all (0: never). */
  stallMs: number;
  /** Keep-alive connections in the subgraph's pool. */
  connections: number;
  /** How long an idle pooled connection is kept. */
  keepAliveMs: number;
}

/**
 * Generation can run for minutes; everything else should answer in seconds.
 * `GATEWAY_SUBGRAPH_TIMEOUTS` replaces these when set.
 */
export const DEFAULT_TIMEOUT_OVERRIDES = 'inference=300000,knowledge=300000';

/** `name=ms,name=ms` into a map, refusing anything else with the variable's name. */
export function parseTimeoutOverrides(variable: string, raw: string): Map<string, number> {
  const overrides = new Map<string, number>();
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const match = /^([A-Za-z_][\w-]*)=(\d+)$/.exec(entry);
    const ms = match ? Number(match[2]) : NaN;
    if (!match || !Number.isSafeInteger(ms) || ms < 1) {
      throw new ConfigError(`${variable} expects comma-separated subgraph=milliseconds entries (e.g. "inference=300000"), but got ${JSON.stringify(entry)}`);
    }
    overrides.set(match[1], ms);
  }
  return overrides;
}

/** The settings of every subgraph, read once: `settingsFor(name)` applies the per-subgraph timeout. */
export function subgraphCallSettingsFromEnv(): (subgraph: string) => SubgraphCallSettings {
  const base: SubgraphCallSettings = {
    timeoutMs: envInt('GATEWAY_SUBGRAPH_TIMEOUT_MS', 30_000, { min: 1 }),
    retries: envInt('GATEWAY_SUBGRAPH_RETRIES', 2, { max: 10 }),
    retryBackoffMs: envInt('GATEWAY_SUBGRAPH_RETRY_BACKOFF_MS', 50, { max: 60_000 }),
    breakerFailures: envInt('GATEWAY_SUBGRAPH_BREAKER_FAILURES', 5, { min: 1 }),
    // Short: a subgraph back from a restart is found by the next probe, and a probe of a dead one costs a refused connection.
    breakerOpenMs: envInt('GATEWAY_SUBGRAPH_BREAKER_OPEN_MS', 1_000, { min: 1 }),
    stallMs: envInt('GATEWAY_SUBGRAPH_STALL_MS', 2_000),
    connections: envInt('GATEWAY_SUBGRAPH_CONNECTIONS', 128, { min: 1 }),
    keepAliveMs: envInt('GATEWAY_SUBGRAPH_KEEPALIVE_MS', 30_000, { min: 1 }),
  };
  const overrides = parseTimeoutOverrides('GATEWAY_SUBGRAPH_TIMEOUTS', envString('GATEWAY_SUBGRAPH_TIMEOUTS', DEFAULT_TIMEOUT_OVERRIDES));
  return (subgraph) => ({ ...base, timeoutMs: overrides.get(subgraph) ?? base.timeoutMs });
}
