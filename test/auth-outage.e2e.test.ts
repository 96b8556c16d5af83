/**
 * Signed-in callers while the auth service is down (issue 21): the gateway
 * checks their credentials against auth's last answer
 * (GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS, gateway/auth/README.md), so the
 * answer keeps the other subgraphs' data and only auth's own fields are null,
 * on every door: HTTP /graphql, graphql-ws and the OpenAI /v1 routes. What auth
 * refused stays refused, and a credential the gateway never saw is still
 * refused with 503. Every service runs in its own process; auth is killed
 * (SIGKILL) and started again.
 */
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

/** Short, so the test can wait out the fresh answers; the stale bound is far beyond the test's length. */
const CACHE_MS = 1_000;
const QUERY = '{ me { email } models { id } }';

let stack: TestStack;

beforeAll(async () => {
  stack = await startTestStack({
    // One gateway process: the credentials cache is per process.
    GATEWAY_WORKERS: '1',
    // Answers must come from the subgraphs, not from a cached whole response.
    GATEWAY_RESPONSE_CACHE: 'false',
    GATEWAY_CREDENTIALS_CACHE_MS: String(CACHE_MS),
    GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS: '600000',
  });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const url = () => stack.gatewayUrl;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function signUp(): Promise<{ token: string; email: string }> {
  const email = uniqueEmail('outage');
  const res = await gql(url(), 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "Outage") { token } }', { e: email });
  expect(res.errors).toBeUndefined();
  return { token: res.data!.signUp.token as string, email };
}

function openAiModels(secret: string): Promise<Response> {
  return fetch(new URL('/v1/models', url()), { headers: bearer(secret) });
}

it('keeps signed-in callers answered with the other subgraphs while auth is down, auth fields null naming auth, and whole again after its restart', async () => {
  const { token, email } = await signUp();
  const key = await gql(url(), 'mutation { createApiKey(name: "outage", scopes: [INFERENCE_INVOKE]) { secret } }', {}, bearer(token));
  expect(key.errors).toBeUndefined();
  const secret = key.data!.createApiKey.secret as string;
  const loggedOut = await signUp();
  // Signed up through auth, but never checked by the gateway: it has no answer to fall back on.
  const unseen = await signUp();

  // Every credential the gateway will vouch for is checked once while auth is up.
  const full = await gql(url(), QUERY, {}, bearer(token));
  expect(full.errors).toBeUndefined();
  expect(full.data!.me).toEqual({ email });
  expect((await openAiModels(secret)).status).toBe(200);
  expect((await gql(url(), 'mutation { logout }', {}, bearer(loggedOut.token))).errors).toBeUndefined();
  await sleep(CACHE_MS + 100);
  expect((await gql(url(), QUERY, {}, bearer(loggedOut.token))).status).toBe(401);

  // A graphql-ws connection opened while auth is up (and kept open: not lazy), re-checked every GATEWAY_CREDENTIALS_CACHE_MS.
  const closes: unknown[] = [];
  const open = createClient({ url: url().replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { Authorization: `Bearer ${token}` }, retryAttempts: 0, lazy: false });
  open.on('closed', (event) => closes.push((event as { code?: number }).code));
  expect((await collect(open, '{ models { id } }', {}))[0].errors).toBeUndefined();

  await stack.kill('auth');
  await sleep(CACHE_MS + 100); // every answer the gateway holds has expired

  const degraded = await gql(url(), QUERY, {}, bearer(token));
  expect(degraded.status).toBe(200);
  expect(degraded.data!.models.length).toBeGreaterThan(0);
  expect(degraded.data!.me).toBeNull();
  expect(degraded.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: 'SUBGRAPH_UNAVAILABLE', service: 'auth' }) })]);

  // The same on graphql-ws (a new connection, authenticated at connection_init) and on the OpenAI door (an API key).
  const ws = wsClient(url(), token);
  try {
    const [event] = await collect(ws, '{ models { id } }', {});
    expect(event.errors).toBeUndefined();
    expect(event.data!.models.length).toBeGreaterThan(0);
  } finally {
    await ws.dispose();
  }
  // The connection opened before the outage has been re-checked meanwhile, and is still open.
  try {
    const [event] = await collect(open, '{ models { id } }', {});
    expect(event.errors).toBeUndefined();
    expect(closes).toEqual([]);
  } finally {
    await open.dispose();
  }
  const models = await openAiModels(secret);
  expect(models.status).toBe(200);
  expect(((await models.json()) as { data: unknown[] }).data.length).toBeGreaterThan(0);
  // Operators see it: each credential served this way is counted, by kind and by why auth could not be asked.
  const metrics = await (await fetch(url().replace(/\/graphql$/, '/metrics'), { headers: { authorization: `Bearer ${stack.env.GATEWAY_METRICS_TOKEN}` } })).text();
  expect(metrics).toMatch(/^sluice_gateway_credentials_stale_answers_total\{credential="session",reason="[A-Z_]+"\} [1-9]/m);
  expect(metrics).toMatch(/^sluice_gateway_credentials_stale_answers_total\{credential="api-key",reason="[A-Z_]+"\} [1-9]/m);

  // What auth refused stays refused; what auth never answered for cannot be vouched for.
  const stillLoggedOut = await gql(url(), QUERY, {}, bearer(loggedOut.token));
  expect(stillLoggedOut.status).toBe(401);
  expect(stillLoggedOut.errors?.[0].extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
  const refused = await gql(url(), QUERY, {}, bearer(unseen.token));
  expect(refused.status).toBe(503);
  expect(refused.errors?.[0].extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
  expect(stack.logs.some((line) => line.includes('credential checked against an earlier answer'))).toBe(true);

  await stack.restart('auth');
  // The gateway's breaker for the auth subgraph lets a probe through after its pause: poll until the answer is whole.
  let recovered = await gql(url(), QUERY, {}, bearer(token));
  for (let i = 0; i < 100 && recovered.errors; i++) {
    expect(recovered.data!.models.length).toBeGreaterThan(0);
    await sleep(100);
    recovered = await gql(url(), QUERY, {}, bearer(token));
  }
  expect(recovered.errors).toBeUndefined();
  expect(recovered.data!.me).toEqual({ email });
  // The gateway's own client of auth has a breaker too (open 1 s after three outages): while it is open a credential
  // with no earlier answer is still refused, coded, and once it lets a question through the answer is whole.
  let firstCheck = await gql(url(), QUERY, {}, bearer(unseen.token));
  for (let i = 0; i < 100 && firstCheck.status === 503; i++) {
    expect(firstCheck.errors?.[0].extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    await sleep(100);
    firstCheck = await gql(url(), QUERY, {}, bearer(unseen.token));
  }
  expect(firstCheck.data!.me).toEqual({ email: unseen.email });
}, 180_000);
