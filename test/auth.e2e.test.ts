import { createPrivateKey } from 'node:crypto';
import { decodeProtectedHeader } from 'jose';
import { IDENTITY_HEADER, IdentitySigner } from '../lib/identity';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

/**
 * The auth subgraph's credentials through the whole stack: API keys, logout,
 * session-key rotation and login throttling, as a client sees them at the
 * gateway. The gateway caches key and session answers for
 * GATEWAY_CREDENTIALS_CACHE_MS, made short here so revocations can be waited out.
 */
const CACHE_MS = 1_000;
const PASSWORD = 'correct horse battery';
const ADMIN_EMAIL = `admin-${process.pid}-${Date.now()}@example.test`;

let stack: TestStack;

beforeAll(async () => {
  // One gateway process: the credentials cache, whose bound the logout test times, is per process.
  stack = await startTestStack({ GATEWAY_WORKERS: '1', GATEWAY_CREDENTIALS_CACHE_MS: String(CACHE_MS), AUTH_ADMIN_EMAILS: ADMIN_EMAIL });
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const url = () => stack.gatewayUrl;
const authUrl = (path: string) => `http://127.0.0.1:${stack.ports.auth}${path}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function signUp(email = uniqueEmail('auth')) {
  const res = await gql(url(), 'mutation($e: String!, $p: String!) { signUp(email: $e, password: $p, name: "Auth") { token user { id } } }', { e: email, p: PASSWORD });
  expect(res.errors).toBeUndefined();
  return { email, token: res.data!.signUp.token as string, id: res.data!.signUp.user.id as string };
}

async function login(email: string, password = PASSWORD) {
  return gql(url(), 'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token user { id } } }', { e: email, p: password });
}

const CREATE = 'mutation($n: String!, $s: [Scope!]!) { createApiKey(name: $n, scopes: $s) { secret apiKey { id name scopes prefix createdAt lastUsedAt revokedAt } } }';
const MY_KEYS = '{ me { id apiKeys { id name scopes prefix lastUsedAt revokedAt } } }';

describe('API keys', () => {
  it('are created with the secret shown once, listed to their owner without it, used as Bearer, and revoked only by their owner', async () => {
    const ada = await signUp();
    const bob = await signUp();
    const created = await gql(url(), CREATE, { n: 'ci', s: ['INFERENCE_INVOKE', 'KNOWLEDGE_READ'] }, bearer(ada.token));
    expect(created.errors).toBeUndefined();
    const { secret, apiKey } = created.data!.createApiKey;
    expect(secret).toMatch(/^sk-[A-Za-z0-9_-]{43}$/);
    expect(apiKey).toEqual({
      id: expect.any(String),
      name: 'ci',
      scopes: ['INFERENCE_INVOKE', 'KNOWLEDGE_READ'],
      prefix: secret.slice(0, 8),
      createdAt: expect.any(String),
      lastUsedAt: null,
      revokedAt: null,
    });

    // The secret is never listed again: the type has no field for it, and the listing holds no trace of it.
    const listed = await gql(url(), MY_KEYS, {}, bearer(ada.token));
    expect(listed.data!.me.apiKeys).toEqual([{ id: apiKey.id, name: 'ci', scopes: apiKey.scopes, prefix: apiKey.prefix, lastUsedAt: null, revokedAt: null }]);
    expect(JSON.stringify(listed)).not.toContain(secret.slice(8));
    const secretField = await gql(url(), '{ me { apiKeys { secret } } }', {}, bearer(ada.token));
    expect(secretField.errors![0].extensions!.code).toBe('GRAPHQL_VALIDATION_FAILED');

    // Used as a credential, the key is its owner, and its use is recorded.
    const asKey = await gql(url(), MY_KEYS, {}, bearer(secret));
    expect(asKey.errors).toBeUndefined();
    expect(asKey.data!.me.id).toBe(ada.id);
    expect(asKey.data!.me.apiKeys[0].lastUsedAt).not.toBeNull();

    // Someone else sees nothing of it and cannot revoke it: the same NOT_FOUND as for an id that does not exist.
    expect((await gql(url(), MY_KEYS, {}, bearer(bob.token))).data!.me.apiKeys).toEqual([]);
    const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }';
    const byBob = await gql(url(), REVOKE, { id: apiKey.id }, bearer(bob.token));
    const unknown = await gql(url(), REVOKE, { id: '00000000-0000-4000-8000-000000000000' }, bearer(bob.token));
    expect(byBob.errors![0].extensions!.code).toBe('NOT_FOUND');
    expect(byBob.errors![0].message.replace(apiKey.id, 'ID')).toBe(unknown.errors![0].message.replace('00000000-0000-4000-8000-000000000000', 'ID'));
    expect((await gql(url(), '{ me { id } }', {}, bearer(secret))).data!.me.id).toBe(ada.id);

    const revoked = await gql(url(), REVOKE, { id: apiKey.id }, bearer(ada.token));
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data!.revokeApiKey.revokedAt).not.toBeNull();
    await sleep(CACHE_MS + 200);
    const refused = await gql(url(), '{ me { id } }', {}, bearer(secret));
    expect(refused.status).toBe(401);
    expect(refused.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
  });

  it('never carry more than their creator, and cannot create or revoke keys themselves', async () => {
    const ada = await signUp();
    const admin = await gql(url(), CREATE, { n: 'root', s: ['ADMIN'] }, bearer(ada.token));
    expect(admin.errors![0]).toMatchObject({ extensions: { code: 'FORBIDDEN', missingScopes: ['admin'] } });

    const narrow = await gql(url(), CREATE, { n: 'reader', s: ['KNOWLEDGE_READ'] }, bearer(ada.token));
    const { secret, apiKey } = narrow.data!.createApiKey;
    // A leaked key must not mint keys that outlive its revocation, or revoke its owner's other keys.
    const minted = await gql(url(), CREATE, { n: 'same', s: ['KNOWLEDGE_READ'] }, bearer(secret));
    expect(minted.errors![0]).toMatchObject({ message: expect.stringContaining('API keys cannot create or revoke API keys'), extensions: { code: 'FORBIDDEN' } });
    const revoked = await gql(url(), 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: apiKey.id }, bearer(secret));
    expect(revoked.errors![0].extensions!.code).toBe('FORBIDDEN');
    expect((await gql(url(), MY_KEYS, {}, bearer(ada.token))).data!.me.apiKeys.map((k: { name: string }) => k.name)).toEqual(['reader']);
  });

  it('cannot log out: logout with a key says to use revokeApiKey', async () => {
    const ada = await signUp();
    const { secret } = (await gql(url(), CREATE, { n: 'k', s: ['KNOWLEDGE_READ'] }, bearer(ada.token))).data!.createApiKey;
    const res = await gql(url(), 'mutation { logout }', {}, bearer(secret));
    expect(res.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
    expect(res.errors![0].message).toContain('revokeApiKey');
  });
});

describe('sessions', () => {
  it("logout revokes the session: the same token is refused once the gateway's cache has expired, other sessions keep working", async () => {
    const ada = await signUp();
    const other = (await login(ada.email)).data!.login.token as string;
    const res = await gql(url(), 'mutation { logout }', {}, bearer(ada.token));
    expect(res.errors).toBeUndefined();
    expect(res.data!.logout).toBe(true);
    await sleep(CACHE_MS + 200);
    const after = await gql(url(), '{ me { id } }', {}, bearer(ada.token));
    expect(after.status).toBe(401);
    expect(after.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
    expect((await gql(url(), '{ me { id } }', {}, bearer(other))).data!.me.id).toBe(ada.id);
  });

  it('anonymous callers cannot log out', async () => {
    const res = await gql(url(), 'mutation { logout }');
    expect(res.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
  });

  it('rotates the signing key for admins only: old tokens keep working, new ones name the new key, the JWKS lists both', async () => {
    const admin = await signUp(ADMIN_EMAIL);
    const user = await signUp();
    const denied = await gql(url(), 'mutation { rotateSessionKey }', {}, bearer(user.token));
    expect(denied.errors![0].extensions!.code).toBe('FORBIDDEN');

    const oldKid = decodeProtectedHeader(user.token).kid;
    const rotated = await gql(url(), 'mutation { rotateSessionKey }', {}, bearer(admin.token));
    expect(rotated.errors).toBeUndefined();
    const [newKid, ...older] = rotated.data!.rotateSessionKey as string[];
    expect(newKid).not.toBe(oldKid);
    expect(older).toContain(oldKid);

    const jwks = await fetch(authUrl('/.well-known/jwks.json'));
    expect(jwks.headers.get('cache-control')).toBe('public, max-age=10');
    expect(((await jwks.json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid)).toEqual([newKid, ...older]);

    expect((await gql(url(), '{ me { id } }', {}, bearer(user.token))).data!.me.id).toBe(user.id);
    const fresh = (await login(user.email)).data!.login.token as string;
    expect(decodeProtectedHeader(fresh).kid).toBe(newKid);
    // The gateway re-fetches the JWKS for an unknown key id, at most once per its cool-down (1 s).
    const deadline = Date.now() + 3_000;
    let me = await gql(url(), '{ me { id } }', {}, bearer(fresh));
    while (me.status === 401 && Date.now() < deadline) {
      await sleep(250);
      me = await gql(url(), '{ me { id } }', {}, bearer(fresh));
    }
    expect(me.data!.me.id).toBe(user.id);
  }, 60_000);
});

describe('login throttling', () => {
  it('refuses the 11th attempt after 10 failures with RATE_LIMITED and retryAfter, even with the right password', async () => {
    const ada = await signUp();
    for (let i = 0; i < 10; i++) {
      const failed = await login(ada.email, 'wrong password!');
      expect(failed.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
    }
    const throttled = await login(ada.email);
    expect(throttled.data ?? null).toBeNull();
    expect(throttled.errors![0]).toMatchObject({ extensions: { code: 'RATE_LIMITED', retryAfter: expect.any(Number) } });
    expect(throttled.errors![0].extensions!.retryAfter).toBeGreaterThan(800);
    expect(throttled.errors![0].message).toContain('too many failed logins');
  }, 60_000);
});

describe('the auth subgraph on its own', () => {
  it("repeats the gateway's checks for a validly signed identity sent straight to it", async () => {
    const gateway = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY));
    const direct = (query: string, claims: { sub: string | null; scopes: string[] }) => gql(authUrl('/graphql'), query, {}, { [IDENTITY_HEADER]: gateway.sign(claims, ['auth']) });
    const user = await signUp();
    const rotate = await direct('mutation { rotateSessionKey }', { sub: user.id, scopes: ['knowledge:read'] });
    expect(rotate.errors![0]).toMatchObject({ extensions: { code: 'FORBIDDEN', missingScopes: ['admin'] } });
    const anonymous = await direct('mutation { createApiKey(name: "x", scopes: [KNOWLEDGE_READ]) { secret } }', { sub: null, scopes: [] });
    expect(anonymous.errors![0].extensions!.code).toBe('UNAUTHENTICATED');
    const keys = await direct(`{ _entities(representations: [{ __typename: "User", id: "${user.id}" }]) { ... on User { id apiKeys { id } } } }`, { sub: 'someone-else', scopes: [] });
    expect(keys.data!._entities).toEqual([null]);
  });
});

describe('internal routes', () => {
  it('refuse anyone but the gateway', async () => {
    for (const [path, body] of [
      ['/internal/api-keys/verify', { secret: `sk-${'a'.repeat(43)}` }],
      ['/internal/sessions/status', { sessionId: 'x' }],
    ] as const) {
      const res = await fetch(authUrl(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toContain('x-sluice-identity');
    }
  });
});
