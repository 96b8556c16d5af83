/**
 * The subgraph client against a real HTTP server on a free port: keep-alive,
 * deadlines, retries (queries only), the circuit breaker and the sharing of
 * identical query fetches.
 */
import { createPrivateKey } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateIdentityKeyPair, IDENTITY_HEADER, IdentitySigner } from '../../lib/identity';
import { dedupCounters } from '../dedup/counters';
import { callerClaims, FetchDedup } from '../dedup/fetch-dedup';
import { SubgraphCallError } from './call-error';
import { isQueryFetch } from './fetch-kind';
import type { SubgraphCallSettings } from './settings';
import { SubgraphClient } from './subgraph-client';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

let server: Server;
let url: string;
let handler: Handler;
let hits: { body: string; headers: IncomingMessage['headers'] }[];
let connections: number;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      hits.push({ body, headers: req.headers });
      handler(req, res, body);
    });
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  hits = [];
  connections = 0;
  handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"ok":true}}');
});

const settings: SubgraphCallSettings = { timeoutMs: 2_000, retries: 2, retryBackoffMs: 1, breakerFailures: 5, breakerOpenMs: 60_000, stallMs: 0, connections: 4, keepAliveMs: 10_000 };
const clients: SubgraphClient[] = [];
function client(overrides: Partial<SubgraphCallSettings> = {}, dedup?: FetchDedup, target = url): SubgraphClient {
  const made = new SubgraphClient('billing', target, { ...settings, ...overrides }, { dedup, sleep: async () => {} });
  clients.push(made);
  return made;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

const signer = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem));
const QUERY = JSON.stringify({ query: 'query Q__billing__0{balance{micros}}', variables: {}, operationName: 'Q__billing__0' });
const MUTATION = JSON.stringify({ query: 'mutation M__billing__0{topUp{micros}}', variables: {}, operationName: 'M__billing__0' });
function init(body: string, sub = 'user-1', now = Date.now()) {
  return { method: 'POST', headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: signer.sign({ sub, scopes: ['billing:read'] }, ['billing'], now), 'x-request-id': `r-${now}` }, body };
}

/** The URL of a port nothing listens on: every connection to it is refused. */
async function closedPort(): Promise<string> {
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  return `http://127.0.0.1:${port}/graphql`;
}

async function failure(promise: Promise<unknown>): Promise<SubgraphCallError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SubgraphCallError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

describe('isQueryFetch', () => {
  it('tells queries from mutations, quickly for what the data source writes and by parsing otherwise', () => {
    expect(isQueryFetch(QUERY)).toBe(true);
    expect(isQueryFetch(JSON.stringify({ query: '{me{id}}' }))).toBe(true);
    expect(isQueryFetch(MUTATION)).toBe(false);
    expect(isQueryFetch(JSON.stringify({ query: '  fragment F on Q { a } query X { ...F }' }))).toBe(true);
    expect(isQueryFetch(JSON.stringify({ query: 'query A { a } mutation B { b }', operationName: 'B' }))).toBe(false);
    expect(isQueryFetch(JSON.stringify({ query: 'query A($v: String) { a(v: $v) }', variables: { v: 'mutation' } }))).toBe(true);
    expect(isQueryFetch('not json')).toBe(false);
    expect(isQueryFetch(undefined)).toBe(false);
  });
});

describe('SubgraphClient', () => {
  it('reuses keep-alive connections for calls made one after another', async () => {
    const c = client();
    for (let i = 0; i < 20; i++) expect(await (await c.fetch(url, init(QUERY))).json()).toEqual({ data: { ok: true } });
    expect(hits).toHaveLength(20);
    // undici may open a second connection while the first is being released; never one per call.
    expect(connections).toBeLessThanOrEqual(2);
  });

  it('retries a query after 502/503/504 and answers with the first good response', async () => {
    const statuses = [503, 502];
    handler = (_req, res) => {
      const status = statuses.shift() ?? 200;
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"data":{"ok":true}}' : 'busy');
    };
    const response = await client().fetch(url, init(QUERY));
    expect(response.status).toBe(200);
    expect(response.url).toBe(url);
    expect(hits).toHaveLength(3);
  });

  it('never retries a mutation, and names the subgraph and status when it fails', async () => {
    handler = (_req, res) => res.writeHead(503).end();
    const error = await failure(client().fetch(url, init(MUTATION)));
    expect(hits).toHaveLength(1);
    expect(error).toMatchObject({ service: 'billing', reason: 'BAD_GATEWAY', attempts: 1 });
    expect(error.message).toBe(`subgraph "billing" is unavailable: ${url} answered 503 Service Unavailable (1 attempt)`);
  });

  it('gives up on a query after its retries, with the connection error that stopped it', async () => {
    const target = await closedPort();
    const error = await failure(client({}, undefined, target).fetch(target, init(QUERY)));
    expect(error).toMatchObject({ service: 'billing', reason: 'CONNECTION_FAILED', attempts: 3 });
    expect(error.message).toMatch(new RegExp(`^subgraph "billing" is unavailable: the connection to ${target} failed \\(ECONNREFUSED.*; 3 attempts\\)$`));
    // A refused connection never carried the mutation: retrying it cannot run it twice.
    expect((await failure(client({}, undefined, target).fetch(target, init(MUTATION)))).attempts).toBe(3);
  });

  it('retries a query, never a mutation, whose connection was reset after the request was sent', async () => {
    handler = (_req, res) => res.socket?.destroy();
    const error = await failure(client().fetch(url, init(MUTATION)));
    expect(error).toMatchObject({ reason: 'CONNECTION_FAILED', attempts: 1 });
    expect(hits).toHaveLength(1);
    hits = [];
    expect(await failure(client().fetch(url, init(QUERY)))).toMatchObject({ reason: 'CONNECTION_FAILED', attempts: 3 });
    expect(hits).toHaveLength(3);
  });

  it("does not retry past the call's deadline", async () => {
    const target = await closedPort();
    const error = await failure(client({ timeoutMs: 100, retryBackoffMs: 1_000 }, undefined, target).fetch(target, init(QUERY)));
    expect(error).toMatchObject({ reason: 'CONNECTION_FAILED', attempts: 1 });
  });

  it('keeps its breaker closed when every failed attempt was retried successfully: one dead replica behind the address', async () => {
    // Every other request lands on a "dead replica" whose connection resets.
    let n = 0;
    handler = (_req, res) => (n++ % 2 === 0 ? res.socket?.destroy() : res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"ok":true}}'));
    const c = client({ breakerFailures: 1 });
    for (let i = 0; i < 6; i++) expect((await c.fetch(url, init(QUERY))).status).toBe(200);
    expect(hits).toHaveLength(12);
  });

  it('counts a call that failed after its retries once toward the breaker', async () => {
    handler = (_req, res) => res.writeHead(503).end();
    const c = client({ breakerFailures: 2 });
    expect(await failure(c.fetch(url, init(QUERY)))).toMatchObject({ reason: 'BAD_GATEWAY', attempts: 3 });
    expect(await failure(c.fetch(url, init(QUERY)))).toMatchObject({ reason: 'BAD_GATEWAY', attempts: 3 });
    expect(await failure(c.fetch(url, init(QUERY)))).toMatchObject({ reason: 'CIRCUIT_OPEN', attempts: 0 });
    expect(hits).toHaveLength(6);
  });

  it('ends an attempt at the deadline and does not retry it', async () => {
    handler = (_req, res) => setTimeout(() => res.writeHead(200).end('{}'), 1_000).unref();
    const error = await failure(client({ timeoutMs: 50 }).fetch(url, init(QUERY)));
    expect(error).toMatchObject({ reason: 'TIMEOUT', attempts: 1 });
    expect(error.message).toBe(`subgraph "billing" did not answer ${url} within 50 ms (GATEWAY_SUBGRAPH_TIMEOUT_MS)`);
    expect(hits).toHaveLength(1);
  });

  it('ends every query in flight at once when the subgraph answers nothing, not even its health probe, then refuses at once', async () => {
    // A frozen process: connections are accepted, nothing is ever answered.
    handler = () => undefined;
    const c = client({ timeoutMs: 30_000, stallMs: 100 });
    const started = Date.now();
    const errors = await Promise.all([failure(c.fetch(url, init(QUERY))), failure(c.fetch(url, init(QUERY, 'user-2')))]);
    expect(Date.now() - started).toBeLessThan(5_000);
    for (const error of errors) {
      expect(error).toMatchObject({ reason: 'TIMEOUT', attempts: 1 });
      expect(error.message).toBe(`subgraph "billing" stopped answering: ${url} gave nothing for 100 ms, and neither did ${new URL(url).origin}/health (GATEWAY_SUBGRAPH_STALL_MS)`);
    }
    expect(await failure(c.fetch(url, init(QUERY)))).toMatchObject({ reason: 'CIRCUIT_OPEN', attempts: 0 });
  });

  it('lets a slow query run on while the subgraph answers its health probe', async () => {
    handler = (req, res) => {
      if (req.url === '/health') return void res.writeHead(404).end();
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"ok":true}}'), 500).unref();
    };
    const response = await client({ timeoutMs: 30_000, stallMs: 100 }).fetch(url, init(QUERY));
    expect(response.status).toBe(200);
    expect(hits.map((h) => (h.body === '' ? 'probe' : 'query'))).toEqual(['query', 'probe']);
  });

  it('opens its breaker after the threshold and then refuses without calling the subgraph', async () => {
    handler = (_req, res) => res.writeHead(500).end();
    const c = client({ breakerFailures: 2 });
    expect((await c.fetch(url, init(MUTATION))).status).toBe(500);
    expect((await c.fetch(url, init(MUTATION))).status).toBe(500);
    const error = await failure(c.fetch(url, init(QUERY)));
    expect(error).toMatchObject({ reason: 'CIRCUIT_OPEN', attempts: 0 });
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.message).toMatch(/^subgraph "billing" is unavailable: its circuit breaker is open after 2 failures in a row; the next try goes in \d+ ms$/);
    expect(hits).toHaveLength(2);
  });
});

describe('subgraph fetch deduplication', () => {
  /** Holds every request until `release` is called, so that calls overlap for certain. */
  function held() {
    const waiting: ServerResponse[] = [];
    handler = (_req, res, body) => {
      (res as ServerResponse & { body?: string }).body = body;
      waiting.push(res);
    };
    return {
      arrived: async (n: number) => {
        while (waiting.length < n) await new Promise((resolve) => setTimeout(resolve, 5));
      },
      release: () => {
        for (const res of waiting.splice(0)) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: { echo: hits.length } }));
      },
    };
  }

  it('sends identical query fetches in flight once, each caller reading its own copy', async () => {
    const gate = held();
    const c = client({}, new FetchDedup());
    const before = dedupCounters.deduplicatedFetches;
    // Signed a second apart: the headers differ, the caller does not.
    const calls = [c.fetch(url, init(QUERY, 'user-1', Date.now())), c.fetch(url, init(QUERY, 'user-1', Date.now() + 1_000)), c.fetch(url, init(QUERY, 'user-1'))];
    await gate.arrived(1);
    gate.release();
    const bodies = await Promise.all(calls.map(async (call) => (await call).json()));
    expect(hits).toHaveLength(1);
    expect(bodies).toEqual([{ data: { echo: 1 } }, { data: { echo: 1 } }, { data: { echo: 1 } }]);
    expect(dedupCounters.deduplicatedFetches - before).toBe(2);
  });

  it('sends separately for other callers, other variables, and every mutation', async () => {
    const gate = held();
    const c = client({ connections: 8 }, new FetchDedup());
    const other = JSON.stringify({ query: 'query Q__billing__0{balance{micros}}', variables: { x: 1 }, operationName: 'Q__billing__0' });
    const calls = [
      c.fetch(url, init(QUERY, 'user-1')),
      c.fetch(url, init(QUERY, 'user-2')),
      c.fetch(url, init(other, 'user-1')),
      c.fetch(url, init(MUTATION, 'user-1')),
      c.fetch(url, init(MUTATION, 'user-1')),
    ];
    await gate.arrived(5);
    gate.release();
    await Promise.all(calls);
    expect(hits).toHaveLength(5);
    expect(new Set(hits.map((h) => callerClaims(h.headers[IDENTITY_HEADER] as string)))).toEqual(
      new Set([JSON.stringify({ aud: ['billing'], scopes: ['billing:read'], sub: 'user-1' }), JSON.stringify({ aud: ['billing'], scopes: ['billing:read'], sub: 'user-2' })]),
    );
  });

  it('shares a failure too, and sends again once the failed fetch is over', async () => {
    handler = (_req, res) => setTimeout(() => res.destroy(), 20);
    const c = client({ retries: 0 }, new FetchDedup());
    const errors = await Promise.all([failure(c.fetch(url, init(QUERY))), failure(c.fetch(url, init(QUERY)))]);
    expect(errors[0]).toBe(errors[1]);
    expect(hits).toHaveLength(1);
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{}}');
    expect((await c.fetch(url, init(QUERY))).status).toBe(200);
    expect(hits).toHaveLength(2);
  });
});
