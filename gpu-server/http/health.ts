/**
 * The HTTP adapter (KServe v2 REST), for now only health:
 * GET /v2/health/live → 200 while live, GET /v2/health/ready → 200 when ready,
 * 503 otherwise. Everything else is 404 with a JSON error, as Triton answers.
 */
import * as http from 'node:http';
import type { InferenceCore } from '../core/inference-core';

export function createHttpHandler(core: InferenceCore): http.RequestListener {
  return (req, res) => {
    const send = (status: number, body?: unknown) => {
      const text = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { error: `method ${req.method} is not allowed; expected GET` });
    if (url === '/v2/health/live') return send(core.isLive() ? 200 : 503);
    if (url === '/v2/health/ready') return send(core.isReady() ? 200 : 503);
    return send(404, { error: `no route for ${url}; this server answers /v2/health/live and /v2/health/ready` });
  };
}
