/**
 * Prometheus text (exposition format 0.0.4) about each GPU endpoint of the
 * tier, served at the inference service's GET /metrics:
 *
 * - sluice_gpu_endpoint_requests_total: calls routed to it (a ModelInfer
 *   batch counts once, each streamed request once), counter;
 * - sluice_gpu_endpoint_failures_total: of those, transport failures (the call
 *   or the stream broke, the endpoint did not answer), counter;
 * - sluice_gpu_endpoint_in_flight: requests of ours on it now (batch rows
 *   counted), gauge;
 * - sluice_gpu_endpoint_queued{model}: mean requests waiting in its queue
 *   over the last poll interval (gpu-endpoint.ts), gauge;
 * - sluice_gpu_endpoint_up: 1 while it answers ServerReady, gauge;
 * - sluice_gpu_endpoint_breaker_state: 0 closed, 1 half-open, 2 open, gauge;
 *
 * and about each DNS target of the endpoint list (dns-endpoints.ts):
 *
 * - sluice_gpu_dns_addresses{target}: addresses in force from it, gauge;
 * - sluice_gpu_dns_failures_total{target}: resolutions that failed, timed out
 *   or answered no address, the last addresses being kept, counter.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BreakerState } from '../../../lib/circuit-breaker';
import { envSecret } from '../../../lib/config';
import { bearerMatcher } from '../../../lib/secret-match';
import type { GpuTier } from './gpu-tier';

const BREAKER_VALUES: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export function endpointMetrics(tier: GpuTier): string {
  const lines: string[] = [];
  const family = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[Record<string, string>, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}{${formatLabels(labels)}} ${value}`);
  };
  const endpoints = tier.endpoints;
  const each = (value: (e: (typeof endpoints)[number]) => number): Array<[Record<string, string>, number]> => endpoints.map((e) => [{ endpoint: e.address }, value(e)]);
  family(
    'sluice_gpu_endpoint_requests_total',
    'counter',
    'Calls routed to the GPU endpoint (a batch counts once, each streamed request once).',
    each((e) => e.requests),
  );
  family(
    'sluice_gpu_endpoint_failures_total',
    'counter',
    'Calls to the GPU endpoint that failed in transport.',
    each((e) => e.failures),
  );
  family(
    'sluice_gpu_endpoint_in_flight',
    'gauge',
    'Requests of this service on the GPU endpoint now (batch rows counted).',
    each((e) => e.inFlight),
  );
  family(
    'sluice_gpu_endpoint_queued',
    'gauge',
    "Mean requests waiting in the GPU endpoint's queue over the last poll interval, per model.",
    endpoints.flatMap((e) => [...e.queued].map(([model, queued]): [Record<string, string>, number] => [{ endpoint: e.address, model }, queued])),
  );
  family(
    'sluice_gpu_endpoint_up',
    'gauge',
    'Whether the GPU endpoint answered its last ServerReady probe.',
    each((e) => (e.reachable ? 1 : 0)),
  );
  family(
    'sluice_gpu_endpoint_breaker_state',
    'gauge',
    "The GPU endpoint's circuit breaker: 0 closed, 1 half-open, 2 open.",
    each((e) => BREAKER_VALUES[e.breaker.state]),
  );
  const names = tier.dnsNames;
  if (names.length > 0) {
    const perName = (value: (n: (typeof names)[number]) => number): Array<[Record<string, string>, number]> => names.map((n) => [{ target: n.target.entry }, value(n)]);
    family(
      'sluice_gpu_dns_addresses',
      'gauge',
      'GPU endpoint addresses in force from the DNS target (its last answer that listed any).',
      perName((n) => n.addresses?.length ?? 0),
    );
    family(
      'sluice_gpu_dns_failures_total',
      'counter',
      'Resolutions of the DNS target that failed, timed out or listed no address (the last addresses were kept).',
      perName((n) => n.failures),
    );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * A `routes` handler for startSubgraph: answers GET /metrics, declines every
 * other path. With a token (INFERENCE_METRICS_TOKEN or its _FILE), a scrape
 * without `Authorization: Bearer <token>` is 401: the labels name the GPU
 * endpoints' internal addresses.
 */
export function metricsRoute(tier: GpuTier, token = envSecret('INFERENCE_METRICS_TOKEN')?.trim()): (req: IncomingMessage, res: ServerResponse) => boolean {
  const authorized = bearerMatcher(token);
  return (req, res) => {
    if ((req.url ?? '/').split('?')[0] !== '/metrics') return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end(`/metrics expects GET, but got ${req.method}\n`);
      return true;
    }
    if (authorized && !authorized(req.headers.authorization)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('/metrics expects Authorization: Bearer <INFERENCE_METRICS_TOKEN>\n');
      return true;
    }
    const body = endpointMetrics(tier);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}

function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}
