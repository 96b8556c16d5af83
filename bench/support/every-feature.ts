/** The gateway settings of issue 19's "every feature on" rows (bench/gateway-throughput.ts, bench/profile-gateway.ts). */

/** Every feature of Sluice's gateway on, each configured so that the benchmark's query and caller pass it. */
export const EVERY_FEATURE = {
  GATEWAY_RATE_LIMITS: 'default:rpm=100000000,tpm=100000000',
  GATEWAY_MAX_COST: '1000000',
  GATEWAY_COST_MODE: 'enforce',
  GATEWAY_APQ: 'true',
  GATEWAY_RESPONSE_CACHE: 'true',
  GATEWAY_METRICS: 'true',
  GATEWAY_DEDUP: 'true',
} as const satisfies Record<string, string>;

/**
 * The same on a foreign graph, for an anonymous caller (it has no auth
 * subgraph to sign in with): the rate limits are the anonymous plan's, and
 * demand control measures without a budget, its default on a graph that
 * declares no costs or list sizes.
 */
export const EVERY_FEATURE_FOREIGN = {
  GATEWAY_RATE_LIMITS: 'anonymous:rpm=100000000,tpm=100000000',
  GATEWAY_APQ: 'true',
  GATEWAY_RESPONSE_CACHE: 'true',
  GATEWAY_METRICS: 'true',
  GATEWAY_DEDUP: 'true',
} as const satisfies Record<string, string>;
