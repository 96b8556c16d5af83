import type { GraphQLDataSource } from '@apollo/gateway';
import type { GatewayMetrics } from './gateway-metrics';

/**
 * Times every fetch a data source makes for the subgraph `name`, as the
 * gateway waits for it (retries, pooling and sharing included), by outcome.
 * The data source itself is returned, its `process` timed in place, so
 * whatever else it offers stays reachable and its type unchanged.
 */
export function observeSubgraphFetches<T extends GraphQLDataSource>(name: string, source: T, metrics: GatewayMetrics): T {
  const process = source.process.bind(source);
  source.process = async (options) => {
    const started = performance.now();
    try {
      const response = await process(options);
      metrics.recordSubgraphFetch(name, response.errors?.length ? 'errors' : 'ok', (performance.now() - started) / 1000);
      return response;
    } catch (error) {
      metrics.recordSubgraphFetch(name, 'failed', (performance.now() - started) / 1000);
      throw error;
    }
  };
  return source;
}
