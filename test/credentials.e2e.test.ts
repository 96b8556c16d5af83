import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { collect, wsClient } from './support/subscriptions';
import { startTestStack, type TestStack } from './support/stack';

/**
 * Credentials at the gateway, through the whole stack: API keys and sessions
 * over HTTP and graphql-ws, and the documented bound on how long a revoked key
 * or a logged-out session keeps working (GATEWAY_CREDENTIALS_CACHE_MS, made
 * short here so the test can wait it out).
 */
const CACHE_MS = 2_000;
/** Timer and scheduling slack on a busy machine, on top of the bound. */
const SLACK_MS = 100;

let stack: TestStack;

beforeAll(async () => {
  // One gateway process: the credentials cache, whose bound these tests time, is per process.
  stack = await startTestStack({ GATEWAY_WORKERS: '1', GATEWAY_CREDENTIALS_CACHE_MS: String(CACHE_MS) });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const url = () => stack.gatewayUrl;
const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
const EMBED = '{ embed(texts: ["credentials"]) { index dimensions } }';

async function signUp() {
  const res = await gql(url(), 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "Key Holder") { token user { id } } }', { e: uniqueEmail('credentials') });
  expect(res.errors).toBeUndefined();
  return res.data!.signUp.token as string;
}

async function createApiKey(token: string) {
  const res = await gql(url(), 'mutation { createApiKey(name: "ci", scopes: [INFERENCE_INVOKE]) { secret apiKey { id scopes revokedAt } } }', {}, bearer(token));
  expect(res.errors).toBeUndefined();
  expect(res.data!.createApiKey.apiKey).toMatchObject({ scopes: ['INFERENCE_INVOKE'], revokedAt: null });
  return { secret: res.data!.createApiKey.secret as string, id: res.data!.createApiKey.apiKey.id as string };
}

function expectRefused(res: Awaited<ReturnType<typeof gql>>, message: string) {
  expect(res.status).toBe(401);
  expect(res.data ?? null).toBeNull();
  expect(res.errors?.[0]).toMatchObject({ message, extensions: { code: 'UNAUTHENTICATED' } });
}

describe('API keys', () => {
  it('work as Bearer over HTTP and graphql-ws, keep working at most GATEWAY_CREDENTIALS_CACHE_MS after revocation, then are refused', async () => {
    const session = await signUp();
    const key = await createApiKey(session);
    expect(key.secret).toMatch(/^sk-/);

    const usedAt = Date.now(); // the gateway asks auth about the key no earlier than this
    const used = await gql(url(), EMBED, {}, bearer(key.secret));
    expect(used.errors).toBeUndefined();
    expect(used.data!.embed).toEqual([{ index: 0, dimensions: expect.any(Number) }]);
    const ws = wsClient(url(), key.secret);
    try {
      const events = await collect(ws, EMBED, {});
      expect(events).toEqual([{ data: used.data }]);
    } finally {
      await ws.dispose();
    }
    const keys = await gql(url(), '{ me { apiKeys { id lastUsedAt } } }', {}, bearer(session));
    expect(keys.data!.me.apiKeys).toEqual([{ id: key.id, lastUsedAt: expect.any(String) }]);

    const revoked = await gql(url(), 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', { id: key.id }, bearer(session));
    expect(revoked.data!.revokeApiKey.revokedAt).toEqual(expect.any(String));
    // Within the bound the gateway still holds auth's earlier answer...
    const cached = await gql(url(), EMBED, {}, bearer(key.secret));
    expect(Date.now() - usedAt).toBeLessThan(CACHE_MS);
    expect(cached.errors).toBeUndefined();
    // ...and past it, asks again and refuses.
    await sleepUntil(usedAt + CACHE_MS + SLACK_MS);
    expectRefused(await gql(url(), EMBED, {}, bearer(key.secret)), 'the API key is not valid (unknown, malformed or revoked): create a new one with createApiKey');
    const refusedWs = wsClient(url(), key.secret);
    await expect(collect(refusedWs, EMBED, {})).rejects.toMatchObject({ code: 4401 });
    await refusedWs.dispose();
  });

  it('closes an open WebSocket with 4401 once its key is revoked, within two cache lifetimes', async () => {
    const session = await signUp();
    const key = await createApiKey(session);
    let closed: (code: number) => void;
    const closedWith = new Promise<number>((resolve) => (closed = resolve));
    const ws = createClient({
      url: url().replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: `Bearer ${key.secret}` },
      lazy: false,
      retryAttempts: 0,
      onNonLazyError: () => undefined,
      on: { closed: (event) => closed((event as { code: number }).code) },
    });
    try {
      expect(await collect(ws, EMBED, {})).toEqual([{ data: { embed: [{ index: 0, dimensions: expect.any(Number) }] } }]);
      const revokedAt = Date.now();
      await gql(url(), 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: key.id }, bearer(session));
      // One cache lifetime for the cached answer to expire, and one check interval (as long) to notice.
      expect(await closedWith).toBe(4401);
      expect(Date.now() - revokedAt).toBeLessThan(2 * CACHE_MS + 1_000);
    } finally {
      await ws.dispose();
    }
  }, 30_000);

  it('refuses a forged sk- key with 401 over HTTP and 4401 over graphql-ws, whatever its shape', async () => {
    for (const forged of [`sk-${'A'.repeat(43)}`, 'sk-short', `sk-${'x'.repeat(300)}`]) {
      expectRefused(await gql(url(), EMBED, {}, bearer(forged)), 'the API key is not valid (unknown, malformed or revoked): create a new one with createApiKey');
    }
    const ws = wsClient(url(), `sk-${'B'.repeat(43)}`);
    await expect(collect(ws, EMBED, {})).rejects.toMatchObject({ code: 4401, reason: expect.stringContaining('the API key is not valid') });
    await ws.dispose();
  });

  it('refuses a header without the Bearer scheme, saying what was expected', async () => {
    expectRefused(
      await gql(url(), EMBED, {}, { authorization: 'Basic dXNlcjpwYXNz' }),
      'the Authorization header is not of the form "Bearer <credential>": expected "Bearer <session token or API key>"',
    );
  });
});

describe('sessions', () => {
  it('after logout, the token keeps working at most GATEWAY_CREDENTIALS_CACHE_MS, then is refused', async () => {
    const token = await signUp();
    const usedAt = Date.now();
    const me = await gql(url(), '{ me { id } }', {}, bearer(token));
    expect(me.data!.me).toEqual({ id: expect.any(String) });

    const logout = await gql(url(), 'mutation { logout }', {}, bearer(token));
    expect(logout.errors).toBeUndefined();
    expect(logout.data).toEqual({ logout: true });
    const cached = await gql(url(), '{ me { id } }', {}, bearer(token));
    expect(Date.now() - usedAt).toBeLessThan(CACHE_MS);
    expect(cached.data).toEqual(me.data);

    await sleepUntil(usedAt + CACHE_MS + SLACK_MS);
    expectRefused(await gql(url(), '{ me { id } }', {}, bearer(token)), 'the session has been logged out: log in again');
    const ws = wsClient(url(), token);
    await expect(collect(ws, '{ me { id } }', {})).rejects.toMatchObject({ code: 4401, reason: 'Unauthorized: the session has been logged out: log in again' });
    await ws.dispose();
  });
});
