/**
 * Hive Gateway's configuration in bench/gateway-throughput.ts, read by its
 * CLI (`hive-gateway supergraph <file> -c <this file>`) as started by
 * bench/support/hive-gateway.ts, which passes through the environment:
 *
 * - HIVE_BENCH_IDENTITY: the signed identity header every subgraph fetch
 *   carries (our subgraphs refuse a fetch without one), signed once, as the
 *   stock gateway's is; unset for a foreign graph, whose subgraphs expect none;
 * - HIVE_BENCH_DEDUP: `true` for its public benchmark settings (inbound
 *   in-flight deduplication, and the outbound one it has on by default),
 *   `false` for neither. `--jit` is the CLI's own flag.
 *
 * The CLI loads this file as an ES module: it imports nothing of the
 * repository (whose modules are CommonJS), nor Hive's own types, whose
 * graphql-yoga augments every GraphQLError's `extensions.http` with a shape
 * that Apollo Server's (a Map of headers) would then fail to type-check
 * against; `defineConfig` only returns its argument.
 */

const identity = process.env.HIVE_BENCH_IDENTITY;
const dedup = process.env.HIVE_BENCH_DEDUP === 'true';

export const gatewayConfig = {
  inboundInflightRequestDeduplication: dedup,
  transportEntries: { '*.http': { options: { deduplicateInflightRequests: dedup } } },
  // lib/identity's IDENTITY_HEADER.
  ...(identity ? { propagateHeaders: { fromClientToSubgraphs: () => ({ 'x-sluice-identity': identity }) } } : {}),
  logging: 'error',
};
