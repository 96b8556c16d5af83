/**
 * The metrics port (Triton's :8002): `GET /metrics` answers the Prometheus
 * text format; any other path is 404, any other method 405. With a token
 * configured, a scrape without `Authorization: Bearer <token>` is 401: the
 * metrics name models and devices, which a caller without the token has no
 * business enumerating.
 */
import type * as http from 'node:http';
import type { Logger } from '../../lib/log';
import { bearerMatcher } from '../../lib/secret-match';
import type { InferenceCore } from '../core/inference-core';
import { collectInferenceMetrics } from './inference-metrics';
import { formatPrometheus, PROMETHEUS_CONTENT_TYPE } from './prometheus';

export function createMetricsHandler(core: InferenceCore, logger: Logger, token?: string): http.RequestListener {
  const authorized = bearerMatcher(token);
  return (req, res) => {
    const send = (status: number, contentType: string, text: string, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { ...headers, 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      return send(404, 'application/json', JSON.stringify({ error: `Not Found: no route for ${path}; the metrics server answers GET /metrics` }));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(405, 'application/json', JSON.stringify({ error: `Method Not Allowed: ${req.method} /metrics expects GET` }), { allow: 'GET, HEAD' });
    }
    if (authorized && !authorized(req.headers.authorization)) {
      return send(401, 'application/json', JSON.stringify({ error: '/metrics expects Authorization: Bearer <GPU_SERVER_METRICS_TOKEN>' }), { 'www-authenticate': 'Bearer' });
    }
    let text: string;
    try {
      text = formatPrometheus(collectInferenceMetrics(core));
    } catch (error) {
      logger.error('metrics collection failed', { error });
      return send(500, 'application/json', JSON.stringify({ error: `metrics collection failed: ${error instanceof Error ? error.message : String(error)}` }));
    }
    send(200, PROMETHEUS_CONTENT_TYPE, text);
  };
}
