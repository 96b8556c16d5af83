/**
 * The /v1 door on a real gateway on port 0 (no subgraph runs: every request
 * here is answered before anything is fetched), in safelist mode and with a
 * rate limit: the door's fixed operations pass the safelist, and the
 * gateway's features answer them as they answer /graphql, in OpenAI's shape.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MANIFEST_FORMAT } from '../persisted-queries/safelist';
import { startTestGateway, type TestGateway } from '../testing/gateway-on-port-0';

let gateway: TestGateway;
let v1: string;
const dir = mkdtempSync(path.join(tmpdir(), 'sluice-openai-'));

beforeAll(async () => {
  const manifest = path.join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ format: MANIFEST_FORMAT, version: 1, operations: [{ id: 'models', body: '{ models { id } }', name: 'Models', type: 'query' }] }));
  gateway = await startTestGateway({ GATEWAY_SAFELIST: 'true', GATEWAY_SAFELIST_FILE: manifest, GATEWAY_RATE_LIMITS: 'default:rpm=3', GATEWAY_BODY_LIMIT_BYTES: '2048' });
  v1 = gateway.url.replace(/\/graphql$/, '/v1');
});
afterAll(async () => {
  await gateway?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const CHAT = { model: 'sluice-chat', messages: [{ role: 'user', content: 'hi' }] };

async function post(route: string, body: unknown, token?: string): Promise<{ status: number; headers: Headers; body: unknown }> {
  const response = await fetch(`${v1}${route}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

it('runs its operations in safelist mode: a caller without the scope is refused by authorization with 403, whole and streamed', async () => {
  const token = await gateway.token(['knowledge:read']);
  for (const stream of [false, true]) {
    const answer = await post('/chat/completions', { ...CHAT, stream }, token);
    expect(answer.status).toBe(403);
    expect(answer.body).toEqual({ error: { message: expect.stringContaining('inference:invoke'), type: 'invalid_request_error', param: null, code: 'insufficient_permissions' } });
  }
});

it('answers a bad key and an anonymous caller with 401 invalid_api_key', async () => {
  expect(await post('/chat/completions', CHAT, 'not-a-token')).toMatchObject({ status: 401, body: { error: { type: 'invalid_request_error', code: 'invalid_api_key' } } });
  expect(await post('/embeddings', { model: 'sluice-embed', input: 'x' })).toMatchObject({ status: 401, body: { error: { code: 'invalid_api_key' } } });
});

it('answers malformed requests in the error shape: unknown route 404, bad JSON 400, an oversized body 413, an unsupported field 400 naming it', async () => {
  const token = await gateway.token(['inference:invoke']);
  const unknown = await fetch(`${v1}/completions`, { method: 'POST', body: '{}' });
  expect(unknown.status).toBe(404);
  expect(await unknown.json()).toMatchObject({ error: { code: 'unknown_url', message: expect.stringMatching(/^Invalid URL \(POST \/v1\/completions\)/) } });
  expect(await post('/chat/completions', '{"model":', token)).toMatchObject({ status: 400, body: { error: { param: 'body' } } });
  expect(await post('/chat/completions', { ...CHAT, messages: [{ role: 'user', content: 'x'.repeat(4096) }] }, token)).toMatchObject({
    status: 413,
    body: { error: { code: 'request_too_large', message: expect.stringMatching(/^the request body expects at most 2048 bytes, but got \d+$/) } },
  });
  expect(await post('/chat/completions', { ...CHAT, presence_penalty: 1 }, token)).toMatchObject({ status: 400, body: { error: { param: 'presence_penalty', code: 'unsupported_parameter' } } });
});

it("charges the rate limit as /graphql does, and answers past it with 429, Retry-After and OpenAI's x-ratelimit headers", async () => {
  const token = await gateway.token(['knowledge:read']);
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await post('/chat/completions', CHAT, token));
  expect(answers.slice(0, 3).map((a) => a.status)).toEqual([403, 403, 403]);
  expect(answers[0].headers.get('x-ratelimit-limit-requests')).toBe('3');
  expect(answers[0].headers.get('x-ratelimit-remaining-requests')).toBe('2');
  const limited = answers[3];
  expect(limited).toMatchObject({ status: 429, body: { error: { type: 'requests', code: 'rate_limit_exceeded' } } });
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(limited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
  expect(limited.headers.get('x-ratelimit-reset-requests')).toBe(`${limited.headers.get('retry-after')}s`);
});
