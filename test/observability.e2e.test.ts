/**
 * Observability at the gateway (issue 7, item 7): Prometheus /metrics on the
 * gateway port, JSON log lines carrying the request and trace ids, and W3C
 * trace context continued from the client to the subgraphs.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gql } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
let proxy: Server;
/** Headers of every fetch the gateway made to the inference subgraph, through a recording proxy. */
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  proxy = createServer(async (req, res) => {
    seen.push(req.headers);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const { host: _host, 'content-length': _length, connection: _connection, ...headers } = req.headers;
    const upstream = await fetch(`http://127.0.0.1:${stack.ports.inference}/graphql`, { method: req.method, headers: headers as Record<string, string>, body: Buffer.concat(chunks) });
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  stack = await startTestStack({
    GATEWAY_WORKERS: '1',
    SLUICE_LOG_FORMAT: 'json',
    SLUICE_LOG_LEVEL: 'debug',
    SLUICE_SUBGRAPH_INFERENCE_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/graphql`,
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await new Promise<void>((resolve) => proxy?.close(() => resolve()));
}, 60_000);

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const metricsUrl = () => stack.gatewayUrl.replace(/\/graphql$/, '/metrics');

/** The gateway's JSON log lines about one request. */
function gatewayLines(requestId: string): Array<Record<string, unknown>> {
  return stack.logs
    .filter((line) => line.startsWith('[gateway] {'))
    .map((line) => JSON.parse(line.slice('[gateway] '.length)) as Record<string, unknown>)
    .filter((line) => line.requestId === requestId);
}

async function eventually<T>(read: () => T | undefined): Promise<T> {
  for (let i = 0; i < 50; i++) {
    const value = read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('not seen within 5 s');
}

describe('trace context', () => {
  it("continues the client's trace to the subgraphs under the gateway's own span, and logs its trace id", async () => {
    const traceId = hex(16);
    const clientSpan = hex(8);
    const requestId = `obs-${hex(4)}`;
    seen.length = 0;
    const res = await gql(stack.gatewayUrl, 'query Models { models { id } }', {}, { traceparent: `00-${traceId}-${clientSpan}-01`, tracestate: 'sluice=test', 'x-request-id': requestId });
    expect(res.errors).toBeUndefined();
    expect(seen).toHaveLength(1);
    expect(seen[0]['x-request-id']).toBe(requestId);
    const [, sentTrace, sentSpan, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(seen[0].traceparent)) ?? [];
    expect({ traceId: sentTrace, flags }).toEqual({ traceId, flags: '01' });
    expect(sentSpan).not.toBe(clientSpan);
    const line = await eventually(() => gatewayLines(requestId).find((l) => l.message === 'operation'));
    expect(line).toMatchObject({ level: 'debug', requestId, traceId, operation: 'Models', type: 'query', outcome: 'ok' });
  });

  it('starts a new trace when the client sends none, and when it sends a malformed one', async () => {
    for (const headers of [{}, { traceparent: 'not-a-traceparent' }] as Record<string, string>[]) {
      const requestId = `obs-${hex(4)}`;
      seen.length = 0;
      await gql(stack.gatewayUrl, '{ models { id } }', {}, { ...headers, 'x-request-id': requestId });
      const sent = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/.exec(String(seen[0]?.traceparent));
      expect(sent).not.toBeNull();
      const line = await eventually(() => gatewayLines(requestId).find((l) => l.message === 'operation'));
      expect(line.traceId).toBe(sent![1]);
    }
  });
});

describe('/metrics', () => {
  it('reports operations by name and outcome, subgraph fetch latency, refusals by HTTP status, and process metrics', async () => {
    await gql(stack.gatewayUrl, 'query Models { models { id } }');
    await gql(stack.gatewayUrl, 'query Broken { nope }');
    const refused = await gql(stack.gatewayUrl, 'query Me { me { id } }', {}, { authorization: 'Bearer not-a-token' });
    expect(refused.status).toBe(401);
    const response = await fetch(metricsUrl(), { headers: { authorization: `Bearer ${stack.env.GATEWAY_METRICS_TOKEN}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    const count = (series: string) => Number(new RegExp(`^${series.replace(/[{}()]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    expect(count('sluice_gateway_operation_duration_seconds_count{operation="Models",type="query",outcome="ok"}')).toBeGreaterThanOrEqual(2);
    expect(count('sluice_gateway_operation_duration_seconds_count{operation="(unresolved)",type="unknown",outcome="GRAPHQL_VALIDATION_FAILED"}')).toBe(1);
    expect(count('sluice_gateway_subgraph_fetch_duration_seconds_count{subgraph="inference",outcome="ok"}')).toBeGreaterThanOrEqual(2);
    expect(count('sluice_gateway_http_request_duration_seconds_count{status="401"}')).toBe(1);
    expect(count('sluice_gateway_http_request_duration_seconds_count{status="200"}')).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/^sluice_gateway_live_subscriptions 0$/m);
    expect(text).toMatch(/^sluice_gateway_process_cpu_seconds_total \d/m);
  });
});
