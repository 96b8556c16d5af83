/**
 * Automatic persisted queries (Apollo's protocol, registered documents in
 * Redis) on the stack's gateway, and safelist mode on a second gateway
 * process over the same subgraphs: only the manifest's operations run, over
 * HTTP (POST and GET, by document or by id) and over WebSocket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { createLogger } from '../lib/log';
import { connectRedis } from '../lib/redis';
import { freePort } from '../scripts/free-port';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const ME = 'query Me { me { id email } }';
const MODELS = 'query ModelIds { models { id } }';

let stack: TestStack;
let redis: Redis;
let token: string;
let safelisted: { url: string; process: ChildProcess };
let dir: string;

/** Another gateway process over the stack's subgraphs and Redis, with `env` on top of the stack's. */
async function startGatewayProcess(env: Record<string, string>): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(__dirname, '..', 'gateway/main.ts')], {
    cwd: path.resolve(__dirname, '..'),
    env: { ...process.env, ...stack.env, GATEWAY_PORT: String(port), GATEWAY_WORKERS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    const healthy = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) return { url: `http://127.0.0.1:${port}/graphql`, process: child };
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  child.kill('SIGKILL');
  throw new Error(`the safelist gateway did not start; its output:\n${output.join('')}`);
}

beforeAll(async () => {
  stack = await startTestStack();
  redis = connectRedis(stack.redisUrl, createLogger());
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "P") { token } }', { e: uniqueEmail('apq') });
  token = res.data!.signUp.token;
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-safelist-'));
  const manifest = path.join(dir, 'manifest.json');
  writeFileSync(
    manifest,
    JSON.stringify({
      format: 'apollo-persisted-query-manifest',
      version: 1,
      operations: [
        { id: sha256(ME), body: ME, name: 'Me', type: 'query' },
        { id: sha256(MODELS), body: MODELS, name: 'ModelIds', type: 'query' },
      ],
    }),
  );
  safelisted = await startGatewayProcess({ GATEWAY_SAFELIST: 'true', GATEWAY_SAFELIST_FILE: manifest });
}, 180_000);

afterAll(async () => {
  if (safelisted && safelisted.process.exitCode === null) {
    const exited = new Promise((resolve) => safelisted.process.once('exit', resolve));
    safelisted.process.kill('SIGTERM');
    await exited;
  }
  await redis?.quit();
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function post(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: response.status, ...((await response.json()) as { data?: { me?: { email: string } } | null; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }) };
}

const persisted = (hash: string) => ({ persistedQuery: { version: 1, sha256Hash: hash } });

describe('automatic persisted queries', () => {
  it('asks for an unknown hash, registers it in Redis with the document, then runs it from the hash alone', async () => {
    const query = `query Apq${Date.now()} { models { id ready } }`;
    const hash = sha256(query);
    const unknown = await post(stack.gatewayUrl, { extensions: persisted(hash) });
    expect(unknown.errors).toEqual([expect.objectContaining({ message: 'PersistedQueryNotFound', extensions: expect.objectContaining({ code: 'PERSISTED_QUERY_NOT_FOUND' }) })]);

    const registered = await post(stack.gatewayUrl, { query, extensions: persisted(hash) });
    expect(registered.errors).toBeUndefined();
    expect(await redis.get(`gw:apq:${hash}`)).toBe(query);
    expect(await redis.ttl(`gw:apq:${hash}`)).toBeGreaterThan(86_000);

    const byHash = await post(stack.gatewayUrl, { extensions: persisted(hash) });
    expect(byHash).toEqual({ status: 200, data: registered.data });
  });

  it("refuses a document sent with another document's hash", async () => {
    const res = await post(stack.gatewayUrl, { query: ME, extensions: persisted(sha256(MODELS)) }, bearer(token));
    expect(res.status).toBe(400);
    expect(res.errors?.[0].message).toBe('provided sha does not match query');
  });
});

describe('safelist mode', () => {
  it('runs a registered document, sent as it is or by its id', async () => {
    const asSent = await post(safelisted.url, { query: ME }, bearer(token));
    expect(asSent.errors).toBeUndefined();
    expect(asSent.data?.me?.email).toMatch(/^apq-/);
    const byId = await post(safelisted.url, { operationName: 'Me', extensions: persisted(sha256(ME)) }, bearer(token));
    expect(byId).toEqual({ status: 200, data: asSent.data });
  });

  it('runs a registered id sent with GET', async () => {
    const params = new URLSearchParams({ operationName: 'ModelIds', extensions: JSON.stringify(persisted(sha256(MODELS))) });
    const response = await fetch(`${safelisted.url}?${params}`, { headers: { 'apollo-require-preflight': 'true' } });
    const body = (await response.json()) as { data?: { models: unknown[] }; errors?: unknown };
    expect([response.status, body.errors]).toEqual([200, undefined]);
    expect(Array.isArray(body.data?.models)).toBe(true);
  });

  it('refuses any other document, and an unknown id, with 400 and PERSISTED_QUERY_NOT_IN_SAFELIST, before running anything', async () => {
    const other = await post(safelisted.url, { query: '{ me { id name } }' }, bearer(token));
    expect(other).toEqual({
      status: 400,
      errors: [
        {
          message:
            'the operation is not in the safelist: this gateway runs only the operations of its persisted query manifest; expected a registered id in extensions.persistedQuery.sha256Hash or a registered document in "query", but got an unregistered document',
          extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST' },
        },
      ],
    });
    const unknownId = await post(safelisted.url, { extensions: persisted(sha256('{ me { id name } }')) }, bearer(token));
    expect(unknownId.status).toBe(400);
    expect(unknownId.errors?.[0].extensions).toEqual({ code: 'PERSISTED_QUERY_NOT_IN_SAFELIST', id: sha256('{ me { id name } }') });
  });

  it('applies over WebSocket too', async () => {
    const client = wsClient(safelisted.url, token);
    try {
      const refused = await collect(client, '{ me { id name } }', {});
      expect(refused).toEqual([{ errors: [expect.objectContaining({ extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST' } })] }]);
      const listed = await collect(client, ME, {});
      expect(listed).toEqual([{ data: { me: expect.objectContaining({ email: expect.stringMatching(/^apq-/) }) } }]);
    } finally {
      await client.dispose();
    }
  });
});
