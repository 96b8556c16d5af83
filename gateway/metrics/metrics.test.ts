import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import type { GraphQLDataSource } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import type { Logger } from '../../lib/log';
import { SignedIdentity, type GatewayContext } from '../auth/context';
import { dedupCounters } from '../dedup/counters';
import { GatewayMetrics, OTHER_OPERATION, UNNAMED_OPERATION, UNRESOLVED_OPERATION } from './gateway-metrics';
import { metricsEndpoint, observeHttp } from './metrics-endpoint';
import { apolloPlugin } from '../pipeline/apollo-adapter';
import { GatewayPipeline } from '../pipeline/pipeline';
import { operationMetrics } from './feature';
import { requestLog } from './request-log';
import { observeSubgraphFetches } from './subgraph-fetches';
import { IdentitySigner } from '../../lib/identity';
import { createHash, generateKeyPairSync } from 'node:crypto';

/** The value of one series of a metric (for a histogram, `suffix` picks _count, _sum or a _bucket). */
async function value(metrics: GatewayMetrics, name: string, labels: Record<string, string>, suffix = ''): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric named ${name}`);
  const { values } = await metric.get();
  // A histogram's series carry their own names: <name>_count, _sum, _bucket.
  const series = values.find((v) => ((v as { metricName?: string }).metricName ?? name) === name + suffix && Object.entries(labels).every(([k, l]) => v.labels[k] === l));
  return series?.value ?? 0;
}

interface Line {
  level: string;
  message: string;
  fields: Record<string, unknown>;
}

function recordingLogger(lines: Line[], base: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => lines.push({ level, message, fields: { ...base, ...fields } });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: (fields) => recordingLogger(lines, { ...base, ...fields }) };
}

const { privateKey } = generateKeyPairSync('ed25519');
const signer = new IdentitySigner(privateKey, 60);
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const context = (requestId: string): GatewayContext => ({ identity: new SignedIdentity({ sub: 'u1', scopes: [] }, signer), requestId, traceparent: TRACEPARENT });

describe('the operation metrics feature', () => {
  const metrics = new GatewayMetrics({ maxOperationNames: 3 });
  const lines: Line[] = [];
  const server = new ApolloServer<GatewayContext>({
    typeDefs: 'type Query { hello: String, broken: String, refused: String } type Mutation { touch: Boolean }',
    resolvers: {
      Query: {
        hello: () => 'world',
        broken: () => {
          throw new Error('database exploded');
        },
        refused: () => {
          throw new GraphQLError('not for you', { extensions: { code: 'FORBIDDEN' } });
        },
      },
      Mutation: { touch: () => true },
    },
    plugins: [apolloPlugin(new GatewayPipeline([operationMetrics(metrics, recordingLogger(lines))]))],
  });
  beforeAll(() => server.start());
  afterAll(() => server.stop());
  const run = (query: string, requestId = 'r') => server.executeOperation({ query }, { contextValue: context(requestId) });

  it('times each operation by name, type and outcome', async () => {
    await run('query Greeting { hello }');
    await run('query Greeting { hello }');
    await run('mutation Touch { touch }');
    await run('query Refused { refused }');
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: 'Greeting', type: 'query', outcome: 'ok' }, '_count')).toBe(2);
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: 'Touch', type: 'mutation', outcome: 'ok' }, '_count')).toBe(1);
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: 'Refused', type: 'query', outcome: 'FORBIDDEN' }, '_count')).toBe(1);
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: 'Greeting', outcome: 'ok' }, '_sum')).toBeGreaterThan(0);
  });

  it('labels anonymous operations and those that never resolved apart from any name a client can choose', async () => {
    await run('{ hello }');
    await run('{ nope }');
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: UNNAMED_OPERATION, outcome: 'ok' }, '_count')).toBe(1);
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: UNRESOLVED_OPERATION, type: 'unknown', outcome: 'GRAPHQL_VALIDATION_FAILED' }, '_count')).toBe(1);
  });

  it('counts names beyond the limit as (other), so clients cannot grow the label set without bound', async () => {
    // Greeting, Touch and Refused took the three places.
    await run('query Fourth { hello }');
    await run('query Fifth { hello }');
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: OTHER_OPERATION, outcome: 'ok' }, '_count')).toBe(2);
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: 'Fourth' }, '_count')).toBe(0);
  });

  it('counts persisted-query (APQ) look-ups: a hash not found is a miss, a hash found a hit', async () => {
    const query = 'query Persisted { hello }';
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const persisted = { persistedQuery: { version: 1, sha256Hash } };
    const ctx = { contextValue: context('apq') };
    await server.executeOperation({ extensions: persisted }, ctx);
    await server.executeOperation({ query, extensions: persisted }, ctx); // registers it: no look-up
    await server.executeOperation({ extensions: persisted }, ctx);
    await server.executeOperation({ extensions: persisted }, ctx);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'apq', result: 'miss' })).toBe(1);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'apq', result: 'hit' })).toBe(2);
    expect(await value(metrics, 'sluice_gateway_operation_duration_seconds', { operation: UNRESOLVED_OPERATION, outcome: 'PERSISTED_QUERY_NOT_FOUND' }, '_count')).toBe(1);
  });

  it('logs a failure of the gateway as a warning with the request and trace ids, and a refusal only at debug', async () => {
    lines.length = 0;
    await run('query Broken { broken }', 'req-broken');
    await run('query Refused { refused }', 'req-refused');
    expect(lines).toEqual([
      {
        level: 'warn',
        message: 'operation failed',
        fields: expect.objectContaining({ requestId: 'req-broken', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', operation: 'Broken', outcome: 'INTERNAL_SERVER_ERROR', error: 'database exploded' }),
      },
      { level: 'debug', message: 'operation', fields: expect.objectContaining({ requestId: 'req-refused', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', operation: 'Refused', outcome: 'FORBIDDEN' }) },
    ]);
  });
});

describe('requestLog', () => {
  it("gives a request's lines its request id and trace id, with one child logger per request", () => {
    const lines: Line[] = [];
    const log = recordingLogger(lines);
    const ctx = context('r-7');
    expect(requestLog(log, ctx)).toBe(requestLog(log, ctx));
    requestLog(log, ctx).info('hello');
    requestLog(log, { ...ctx, traceparent: undefined }).info('untraced');
    expect(lines).toEqual([
      { level: 'info', message: 'hello', fields: { requestId: 'r-7', traceId: '4bf92f3577b34da6a3ce929d0e0e4736' } },
      { level: 'info', message: 'untraced', fields: { requestId: 'r-7' } },
    ]);
  });
});

describe('subgraph fetches', () => {
  it('times each fetch by subgraph and outcome, keeping the data source itself', async () => {
    const metrics = new GatewayMetrics();
    const answers = [{ data: { a: 1 } }, { errors: [new GraphQLError('no')] }];
    const source: GraphQLDataSource & { extra: string } = {
      extra: 'kept',
      process: async () => {
        const next = answers.shift();
        if (!next) throw new Error('connection refused');
        return next;
      },
    };
    const observed = observeSubgraphFetches('billing', source, metrics);
    expect(observed).toBe(source);
    const options = {} as Parameters<GraphQLDataSource['process']>[0];
    await expect(observed.process(options)).resolves.toEqual({ data: { a: 1 } });
    await observed.process(options);
    await expect(observed.process(options)).rejects.toThrow('connection refused');
    for (const outcome of ['ok', 'errors', 'failed']) {
      expect(await value(metrics, 'sluice_gateway_subgraph_fetch_duration_seconds', { subgraph: 'billing', outcome }, '_count')).toBe(1);
    }
  });
});

describe('registration points', () => {
  it('counts rate-limit refusals, cache look-ups, deduplication and live subscriptions', async () => {
    const metrics = new GatewayMetrics();
    const { deduplicatedFetches, deduplicatedOperations } = dedupCounters;
    metrics.recordRateLimitRefusal('user', 'rpm');
    metrics.recordRateLimitRefusal('user', 'rpm');
    metrics.recordRateLimitRefusal('ip', 'rpm');
    metrics.recordCacheLookup('response', 'hit');
    metrics.recordCacheLookup('response', 'miss');
    metrics.recordCacheLookup('apq', 'hit');
    dedupCounters.deduplicatedFetches += 3;
    dedupCounters.deduplicatedOperations += 1;
    metrics.subscriptionStarted();
    metrics.subscriptionStarted();
    metrics.subscriptionEnded();
    expect(await value(metrics, 'sluice_gateway_rate_limited_total', { scope: 'user', limit: 'rpm' })).toBe(2);
    expect(await value(metrics, 'sluice_gateway_rate_limited_total', { scope: 'ip', limit: 'rpm' })).toBe(1);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'response', result: 'hit' })).toBe(1);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'response', result: 'miss' })).toBe(1);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'apq', result: 'hit' })).toBe(1);
    expect(await value(metrics, 'sluice_gateway_deduplicated_total', { kind: 'fetch' })).toBe(deduplicatedFetches + 3);
    expect(await value(metrics, 'sluice_gateway_deduplicated_total', { kind: 'operation' })).toBe(deduplicatedOperations + 1);
    expect(await value(metrics, 'sluice_gateway_live_subscriptions', {})).toBe(1);
  });
});

describe('the /metrics endpoint', () => {
  let server: Server;
  let base: string;
  const metrics = new GatewayMetrics();
  metrics.enableProcessMetrics();
  const open = metricsEndpoint({ metrics });
  const guarded = metricsEndpoint({ metrics, token: 's3cret' });
  beforeAll(async () => {
    server = createServer((req, res) => {
      const path = req.url ?? '/';
      if (path === '/open') return void open(req, res);
      if (path === '/guarded') return void guarded(req, res);
      void observeHttp(
        req,
        res,
        async (_req, r) => {
          if (path.startsWith('/cache-')) r.setHeader('x-cache', path.slice('/cache-'.length).toUpperCase());
          r.writeHead(path === '/fail' ? 401 : 200).end();
        },
        metrics,
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('serves the Prometheus text format with process metrics and the HTTP requests by status', async () => {
    await fetch(`${base}/graphql`);
    await fetch(`${base}/fail`);
    const response = await fetch(`${base}/open`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await response.text();
    expect(text).toContain('# TYPE sluice_gateway_http_request_duration_seconds histogram');
    expect(text).toMatch(/^sluice_gateway_http_request_duration_seconds_count\{status="200"\} 1$/m);
    expect(text).toMatch(/^sluice_gateway_http_request_duration_seconds_count\{status="401"\} 1$/m);
    expect(text).toContain('sluice_gateway_process_resident_memory_bytes');
    expect(text).toContain('sluice_gateway_nodejs_eventloop_lag_seconds');
  });

  it('counts response-cache hits and misses from the x-cache header the client got, and not bypasses', async () => {
    for (const path of ['/cache-hit', '/cache-miss', '/cache-miss', '/cache-bypass']) await fetch(base + path);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'response', result: 'hit' })).toBe(1);
    expect(await value(metrics, 'sluice_gateway_cache_lookups_total', { cache: 'response', result: 'miss' })).toBe(2);
    expect((await metrics.registry.getSingleMetric('sluice_gateway_cache_lookups_total')!.get()).values).toHaveLength(2);
  });

  it('asks for the bearer token when one is configured', async () => {
    const missing = await fetch(`${base}/guarded`);
    expect(missing.status).toBe(401);
    expect(await missing.text()).toContain('expects Authorization: Bearer <GATEWAY_METRICS_TOKEN>');
    expect((await fetch(`${base}/guarded`, { headers: { authorization: 'Bearer wrong!' } })).status).toBe(401);
    expect((await fetch(`${base}/guarded`, { headers: { authorization: 'Bearer s3cret' } })).status).toBe(200);
  });

  it('answers only GET and HEAD', async () => {
    const response = await fetch(`${base}/open`, { method: 'POST', body: '{}' });
    expect(response.status).toBe(405);
    expect(await response.text()).toBe('/metrics expects GET, but got POST\n');
  });
});
