import type { IncomingMessage, ServerResponse } from 'node:http';
import { bearerMatcher } from '../../lib/secret-match';
import { CACHE_STATUS_HEADER } from '../response-cache/feature';
import type { GatewayMetrics } from './gateway-metrics';
import { clusterMetricsText } from './cluster-metrics';

export interface MetricsEndpointOptions {
  metrics: GatewayMetrics;
  /** When set, scrapes must send `Authorization: Bearer <token>`. */
  token?: string;
}

/**
 * `GET /metrics`: the Prometheus text exposition of the gateway — of every
 * worker together when the gateway runs several (see cluster-metrics.ts).
 */
export function metricsEndpoint({ metrics, token }: MetricsEndpointOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const authorized = bearerMatcher(token);
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`/metrics expects GET, but got ${req.method}\n`);
      return;
    }
    if (authorized && !authorized(req.headers.authorization)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('/metrics expects Authorization: Bearer <GATEWAY_METRICS_TOKEN>\n');
      return;
    }
    let text: string;
    try {
      text = await clusterMetricsText(metrics);
    } catch (error) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end(`metrics are unavailable: ${(error as Error).message}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text);
  };
}

/**
 * Runs an HTTP handler and records its status and duration, and the
 * response cache's verdict as the client saw it in `x-cache`.
 */
export async function observeHttp(req: IncomingMessage, res: ServerResponse, handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>, metrics: GatewayMetrics): Promise<void> {
  const started = performance.now();
  let status: number | undefined;
  try {
    await handle(req, res);
  } catch (error) {
    status = 500; // what HttpService answers for a handler that throws
    throw error;
  } finally {
    metrics.recordHttpRequest(status ?? res.statusCode, (performance.now() - started) / 1000);
    const cache = res.getHeader(CACHE_STATUS_HEADER);
    if (cache === 'HIT') metrics.recordCacheLookup('response', 'hit');
    else if (cache === 'MISS') metrics.recordCacheLookup('response', 'miss');
  }
}
