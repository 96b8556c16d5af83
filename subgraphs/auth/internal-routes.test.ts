import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import { IDENTITY_HEADER, IdentitySigner, IdentityVerifier } from '../../lib/identity';
import { internalRouter } from '../../lib/internal-routes';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { ApiKeyStore } from './api-key-store';
import { ApiKeys } from './api-keys';
import { authInternalRoutes, SESSION_STATUS_PATH, VERIFY_API_KEY_PATH } from './internal-routes';
import { SESSION_SCOPES } from './scopes';
import { SessionStore } from './session-store';

const gatewayKeys = generateKeyPairSync('ed25519');
const gateway = new IdentitySigner(gatewayKeys.privateKey);
const forger = new IdentitySigner(generateKeyPairSync('ed25519').privateKey);

let redis: Redis;
let server: Server;
let base: string;
let apiKeys: ApiKeys;
let sessions: SessionStore;

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  await redis.flushall();
  apiKeys = new ApiKeys(new ApiKeyStore(redis));
  sessions = new SessionStore(redis, 3_600_000);
  const routes = internalRouter(authInternalRoutes({ apiKeys, sessions }), { service: 'auth', verifier: new IdentityVerifier([gatewayKeys.publicKey]), log: createLogger() });
  server = createServer((req, res) => {
    if (!routes(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await new Promise((resolve) => server.close(resolve));
  redis.disconnect();
});

async function post(path: string, body: unknown, identity: string | undefined = gateway.sign({ sub: null, scopes: [] }, ['auth'])) {
  const response = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(identity ? { [IDENTITY_HEADER]: identity } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('internal routes', () => {
  it('verifies a live API key to its owner, scopes and id', async () => {
    const { secret, apiKey } = await apiKeys.create('u1', SESSION_SCOPES, 'k', ['knowledge:read', 'inference:invoke']);
    expect(await post(VERIFY_API_KEY_PATH, { secret })).toEqual({ status: 200, body: { sub: 'u1', scopes: ['knowledge:read', 'inference:invoke'], keyId: apiKey.id } });
  });

  it('answers 401 with one message for unknown, malformed and revoked keys', async () => {
    const { secret, apiKey } = await apiKeys.create('u1', SESSION_SCOPES, 'k', ['knowledge:read']);
    await apiKeys.revoke('u1', apiKey.id);
    const refused = { status: 401, body: { error: 'the API key is not valid', code: 'UNAUTHENTICATED' } };
    expect(await post(VERIFY_API_KEY_PATH, { secret })).toEqual(refused);
    expect(await post(VERIFY_API_KEY_PATH, { secret: 'sk-short' })).toEqual(refused);
    expect(await post(VERIFY_API_KEY_PATH, { secret: `sk-${'x'.repeat(43)}` })).toEqual(refused);
  });

  it('answers whether a session is revoked', async () => {
    await sessions.recordIssued('s1', new Date(Date.now() + 60_000));
    expect(await post(SESSION_STATUS_PATH, { sessionId: 's1' })).toEqual({ status: 200, body: { revoked: false } });
    await sessions.revoke('s1');
    expect(await post(SESSION_STATUS_PATH, { sessionId: 's1' })).toEqual({ status: 200, body: { revoked: true } });
  });

  it('refuses callers without an identity signed by the gateway with 401, before looking at the body', async () => {
    const { secret } = await apiKeys.create('u1', SESSION_SCOPES, 'k', ['knowledge:read']);
    const missing = await post(VERIFY_API_KEY_PATH, { secret }, '');
    expect(missing.status).toBe(401);
    expect(missing.body.error).toContain(`missing ${IDENTITY_HEADER} header`);
    const forged = await post(SESSION_STATUS_PATH, { sessionId: 's1' }, forger.sign({ sub: 'u1', scopes: ['admin'] }, ['auth']));
    expect(forged).toEqual({ status: 401, body: { error: `${IDENTITY_HEADER} header has an invalid signature`, code: 'UNAUTHENTICATED' } });
    const expired = await post(VERIFY_API_KEY_PATH, { secret }, gateway.sign({ sub: null, scopes: [] }, ['auth'], Date.now() - 3_600_000));
    expect(expired.status).toBe(401);
    expect(expired.body.error).toContain('expired');
  });

  it("answers 503 SERVICE_UNAVAILABLE when its store is away: the code the gateway reads as an outage, to check credentials against auth's last answer", async () => {
    // A client of a Redis that is not there, failing each command at once as a client that has given up waiting does.
    const away = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    away.on('error', () => undefined);
    const routes = internalRouter(authInternalRoutes({ apiKeys: new ApiKeys(new ApiKeyStore(away)), sessions: new SessionStore(away, 3_600_000) }), {
      service: 'auth',
      verifier: new IdentityVerifier([gatewayKeys.publicKey]),
      log: createLogger(),
    });
    server.removeAllListeners('request');
    server.on('request', (req, res) => {
      if (!routes(req, res)) res.writeHead(404).end();
    });
    expect(await post(SESSION_STATUS_PATH, { sessionId: 's1' })).toEqual({
      status: 503,
      body: { error: 'auth could not read the session (its store may be unreachable)', code: 'SERVICE_UNAVAILABLE' },
    });
    expect(await post(VERIFY_API_KEY_PATH, { secret: `sk-${'x'.repeat(43)}` })).toEqual({
      status: 503,
      body: { error: 'auth could not check the API key (its store may be unreachable)', code: 'SERVICE_UNAVAILABLE' },
    });
    away.disconnect();
  });

  it('says what it expected for a wrong method, body or size', async () => {
    const get = await fetch(base + SESSION_STATUS_PATH);
    expect(get.status).toBe(405);
    expect(await get.json()).toEqual({ error: `${SESSION_STATUS_PATH} expects POST, but got GET`, code: 'BAD_USER_INPUT' });
    expect(await post(VERIFY_API_KEY_PATH, 'not json')).toEqual({ status: 400, body: { error: `${VERIFY_API_KEY_PATH} expects a JSON body {"secret": "sk-..."}`, code: 'BAD_USER_INPUT' } });
    expect(await post(VERIFY_API_KEY_PATH, { key: 'sk-x' })).toEqual({ status: 400, body: { error: `${VERIFY_API_KEY_PATH} expects a JSON body {"secret": "sk-..."}`, code: 'BAD_USER_INPUT' } });
    expect(await post(SESSION_STATUS_PATH, [])).toEqual({ status: 400, body: { error: `${SESSION_STATUS_PATH} expects a JSON object {"sessionId": "<jti>"}`, code: 'BAD_USER_INPUT' } });
    expect((await post(SESSION_STATUS_PATH, { sessionId: 'x'.repeat(5000) })).status).toBe(413);
  });
});
