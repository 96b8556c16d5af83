/**
 * The gateway's Authenticator and its cache of the auth service's answers,
 * against a real HTTP server on a free port standing in for the auth service:
 * it publishes a JWKS, answers the two internal routes of the contract
 * (`/internal/api-keys/verify`, `/internal/sessions/status`), refuses any
 * request without the gateway's signed identity, and counts what it was asked.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT } from 'jose';
import { generateIdentityKeyPair, IDENTITY_HEADER, type Identity, IdentitySigner, IdentityVerifier } from '../../lib/identity';
import { SESSION_ALGORITHM, SESSION_AUDIENCE, SESSION_ISSUER } from '../../lib/session-token';
import { AuthenticationError, Authenticator, type AuthenticatorOptions, KeysUnavailableError } from './authenticate';
import { AuthServiceClient, type ApiKeyAnswer } from './credentials/auth-service-client';
import { CachedCredentialVerifier } from './credentials/cached-verifier';
import { VerificationCache } from './credentials/verification-cache';

const gatewayKeys = generateIdentityKeyPair();
const signer = new IdentitySigner(createPrivateKey(gatewayKeys.privateKeyPem));
const sessionKey = generateKeyPairSync('ed25519');
const KID = 'test-key';

/** The stand-in auth service: state the tests change, and a log of what the gateway asked. */
class FakeAuth {
  readonly keys = new Map<string, { sub: string; scopes: string[]; keyId: string }>();
  readonly revokedSessions = new Set<string>();
  readonly asked: { path: string; body: Record<string, string>; identity: { sub: string | null; scopes: string[] } }[] = [];
  /** Answers to hold back, in ms, before replying. */
  delayMs = 0;
  /** How many of the next internal requests fail with 500. */
  failNext = 0;
  /** Answer internal requests as auth does when its Redis is down: 503 SERVICE_UNAVAILABLE. */
  storeDown = false;
  private readonly verifier = new IdentityVerifier([createPublicKey(gatewayKeys.publicKeyPem)]);
  private server!: Server;
  url = '';

  async start(): Promise<void> {
    const jwk = { ...(await exportJWK(sessionKey.publicKey)), kid: KID, alg: SESSION_ALGORITHM, use: 'sig' };
    this.server = createServer((req, res) => void this.handle(req, jwk).then(([status, body]) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  count(path: string): number {
    return this.asked.filter((a) => a.path === path).length;
  }

  private async handle(req: IncomingMessage, jwk: object): Promise<[number, unknown]> {
    if (req.method === 'GET' && req.url === '/.well-known/jwks.json') return [200, { keys: [jwk] }];
    let identity: Identity;
    try {
      identity = this.verifier.verify(req.headers[IDENTITY_HEADER] as string | undefined, 'auth');
    } catch (error) {
      return [401, { error: (error as Error).message }];
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string>;
    this.asked.push({ path: req.url!, body, identity: { sub: identity.sub, scopes: identity.scopes } });
    // The answer reflects the state when the question arrived, however late it is sent.
    const answer = this.answer(req.url!, body);
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    return answer;
  }

  private answer(path: string, body: Record<string, string>): [number, unknown] {
    if (this.failNext > 0) {
      this.failNext--;
      return [500, { error: 'redis is down' }];
    }
    if (this.storeDown) return [503, { error: 'auth could not read the session (its store may be unreachable)', code: 'SERVICE_UNAVAILABLE' }];
    if (path === '/internal/api-keys/verify') {
      const key = this.keys.get(body.secret);
      return key ? [200, key] : [401, { error: 'the API key is not valid' }];
    }
    if (path === '/internal/sessions/status') return [200, { revoked: this.revokedSessions.has(body.sessionId) }];
    return [404, { error: `no route ${path}` }];
  }
}

const auth = new FakeAuth();
beforeAll(() => auth.start());
afterAll(() => auth.stop());
beforeEach(() => {
  auth.asked.length = 0;
  auth.delayMs = 0;
  auth.failNext = 0;
  auth.storeDown = false;
});

const VERIFY = '/internal/api-keys/verify';
const INVALID_KEY_MESSAGE = 'the API key is not valid (unknown, malformed or revoked): create a new one with createApiKey';
const STATUS = '/internal/sessions/status';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function authenticator(
  options: { cacheMs?: number; cacheEntries?: number; authUrl?: string; signer?: IdentitySigner } & Pick<AuthenticatorOptions, 'staleIfErrorMs' | 'stalePatienceMs' | 'onStaleAnswer'> = {},
) {
  return new Authenticator({
    jwksUrl: `${auth.url}/.well-known/jwks.json`,
    authUrl: options.authUrl ?? auth.url,
    signer: options.signer ?? signer,
    cacheMs: options.cacheMs ?? 10_000,
    cacheEntries: options.cacheEntries,
    staleIfErrorMs: options.staleIfErrorMs,
    stalePatienceMs: options.stalePatienceMs,
    onStaleAnswer: options.onStaleAnswer,
  });
}

/** A fresh API key known to the fake auth service. */
function newKey(sub = 'user-1', scopes = ['inference:invoke']) {
  const secret = `sk-${randomBytes(24).toString('base64url')}`;
  const keyId = `key-${randomBytes(4).toString('hex')}`;
  auth.keys.set(secret, { sub, scopes, keyId });
  return { secret, keyId, sub, scopes };
}

function session(claims: { jti?: string; sub?: string; scopes?: string[] } = {}) {
  let jwt = new SignJWT({ scopes: claims.scopes ?? ['inference:invoke', 'knowledge:read'] })
    .setProtectedHeader({ alg: SESSION_ALGORITHM, kid: KID })
    .setSubject(claims.sub ?? 'user-1')
    .setIssuer(SESSION_ISSUER)
    .setAudience(SESSION_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('1h');
  if (claims.jti !== '') jwt = jwt.setJti(claims.jti ?? randomBytes(8).toString('hex'));
  return jwt.sign(sessionKey.privateKey);
}

describe('API keys', () => {
  it("asks auth with the gateway's own signed identity and returns the key's subject, scopes, key id and the caller's address", async () => {
    const key = newKey('user-7', ['knowledge:read', 'billing:read']);
    const claims = await authenticator().authenticate(`Bearer ${key.secret}`, '203.0.113.9');
    expect(claims).toEqual({ sub: 'user-7', scopes: ['knowledge:read', 'billing:read'], keyId: key.keyId, ip: '203.0.113.9' });
    expect(auth.asked).toEqual([{ path: VERIFY, body: { secret: key.secret }, identity: { sub: null, scopes: [] } }]);
  });

  it('keeps a revoked key working for at most the cache bound, counted from when auth was asked', async () => {
    const cacheMs = 1_000;
    const gateway = authenticator({ cacheMs });
    const key = newKey();
    const asked = Date.now();
    await gateway.authenticate(`Bearer ${key.secret}`, undefined);
    auth.keys.delete(key.secret); // revoked at auth
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).resolves.toMatchObject({ keyId: key.keyId });
    expect(Date.now() - asked).toBeLessThan(cacheMs); // the cached answer was used, inside the bound
    expect(auth.count(VERIFY)).toBe(1);
    await sleep(asked + cacheMs + 20 - Date.now()); // + a timer's slack: the cache was asked a moment after `asked`
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).rejects.toThrow(new AuthenticationError(INVALID_KEY_MESSAGE));
    expect(auth.count(VERIFY)).toBe(2);
  });

  it('caches "not valid" too, so a client retrying a forged key does not hammer auth', async () => {
    const gateway = authenticator();
    for (let i = 0; i < 3; i++) await expect(gateway.authenticate('Bearer sk-forged-forged-forged', undefined)).rejects.toBeInstanceOf(AuthenticationError);
    expect(auth.count(VERIFY)).toBe(1);
  });

  it('refuses an oversized key without asking auth, with the same words as any invalid key', async () => {
    await expect(authenticator().authenticate(`Bearer sk-${'a'.repeat(5000)}`, undefined)).rejects.toThrow(new AuthenticationError(INVALID_KEY_MESSAGE));
    expect(auth.asked).toHaveLength(0);
  });

  it('shares one question among concurrent look-ups of the same key', async () => {
    auth.delayMs = 100;
    const gateway = authenticator();
    const key = newKey();
    const answers = await Promise.all(Array.from({ length: 8 }, () => gateway.authenticate(`Bearer ${key.secret}`, undefined)));
    expect(new Set(answers.map((a) => a.keyId))).toEqual(new Set([key.keyId]));
    expect(auth.count(VERIFY)).toBe(1);
  });

  it('does not share a question older than the bound: a slow auth cannot stretch it', async () => {
    auth.delayMs = 600;
    const gateway = authenticator({ cacheMs: 300 });
    const key = newKey();
    const first = gateway.authenticate(`Bearer ${key.secret}`, undefined);
    await sleep(100);
    const joined = gateway.authenticate(`Bearer ${key.secret}`, undefined); // the first question is 100 ms old: shared
    await sleep(250);
    auth.keys.delete(key.secret);
    const fresh = gateway.authenticate(`Bearer ${key.secret}`, undefined); // it is now past 300 ms: asked again
    await expect(first).resolves.toMatchObject({ keyId: key.keyId });
    await expect(joined).resolves.toMatchObject({ keyId: key.keyId });
    await expect(fresh).rejects.toBeInstanceOf(AuthenticationError);
    expect(auth.count(VERIFY)).toBe(2);
  });

  it('keeps at most cacheEntries answers: the oldest is asked again', async () => {
    const gateway = authenticator({ cacheEntries: 2 });
    const [a, b, c] = [newKey(), newKey(), newKey()];
    for (const key of [a, b, c, c, b]) await gateway.authenticate(`Bearer ${key.secret}`, undefined);
    expect(auth.count(VERIFY)).toBe(3);
    await gateway.authenticate(`Bearer ${a.secret}`, undefined);
    expect(auth.count(VERIFY)).toBe(4);
  });

  it('holds answers under a keyed hash, never the secret', async () => {
    const apiKeys = new VerificationCache<ApiKeyAnswer>({ ttlMs: 10_000, maxEntries: 10 });
    const verifier = new CachedCredentialVerifier(new AuthServiceClient(auth.url, signer), apiKeys, new VerificationCache({ ttlMs: 10_000, maxEntries: 10 }));
    const key = newKey();
    await expect(verifier.verifyApiKey(key.secret)).resolves.toMatchObject({ valid: true, keyId: key.keyId });
    await verifier.verifyApiKey('sk-forged');
    const held = apiKeys.keys();
    expect(held).toHaveLength(2);
    for (const cacheKey of held) {
      expect(cacheKey).not.toContain(key.secret.slice(3, 12));
      expect(cacheKey).not.toContain('forged');
      expect(cacheKey).toMatch(/^[A-Za-z0-9_-]{43}$/); // an HMAC-SHA256, base64url
    }
  });

  it('answers 503 (KeysUnavailableError), never anonymous or 401, when auth is unreachable, and does not cache the failure', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(authenticator({ authUrl: `http://127.0.0.1:${port}` }).authenticate(`Bearer ${newKey().secret}`, undefined)).rejects.toThrow(
      /POST http:\/\/127\.0\.0\.1:\d+\/internal\/api-keys\/verify failed \(ECONNREFUSED\)/,
    );

    const gateway = authenticator();
    const key = newKey();
    auth.failNext = 1;
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).rejects.toThrow(
      new KeysUnavailableError('POST /internal/api-keys/verify answered 500: redis is down, not the expected answer', 'BAD_ANSWER'),
    );
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).resolves.toMatchObject({ keyId: key.keyId });
    expect(auth.count(VERIFY)).toBe(2);
  });

  it('answers 503, not "invalid key", when auth refuses the gateway\'s identity (mismatched identity keys)', async () => {
    const stranger = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem));
    const refusal = authenticator({ signer: stranger }).authenticate(`Bearer ${newKey().secret}`, undefined);
    await expect(refusal).rejects.toBeInstanceOf(KeysUnavailableError);
    await expect(refusal).rejects.toThrow(/answered 401: x-sluice-identity header has an invalid signature \(auth refused the gateway's identity/);
  });
});

describe('sessions', () => {
  it("verifies the token locally and returns its subject, scopes, session id and the caller's address", async () => {
    const token = await session({ jti: 'session-1', sub: 'user-3' });
    await expect(authenticator().authenticate(`Bearer ${token}`, '198.51.100.4')).resolves.toEqual({
      sub: 'user-3',
      scopes: ['inference:invoke', 'knowledge:read'],
      sessionId: 'session-1',
      ip: '198.51.100.4',
    });
    expect(auth.asked).toEqual([{ path: STATUS, body: { sessionId: 'session-1' }, identity: { sub: null, scopes: [] } }]);
  });

  it('refuses a logged-out session once the cached status is past the bound', async () => {
    const cacheMs = 1_000;
    // The cache's clock (Date.now) moves only when the test moves it: a stall of a loaded machine cannot expire an answer early.
    let clock = Date.now();
    jest.spyOn(Date, 'now').mockImplementation(() => clock);
    try {
      const gateway = authenticator({ cacheMs });
      const jti = randomBytes(8).toString('hex');
      const token = await session({ jti });
      await gateway.authenticate(`Bearer ${await session()}`, undefined); // fetches the JWKS, so auth is asked right away below
      await gateway.authenticate(`Bearer ${token}`, undefined);
      auth.revokedSessions.add(jti); // logout
      clock += cacheMs - 1;
      await expect(gateway.authenticate(`Bearer ${token}`, undefined)).resolves.toMatchObject({ sessionId: jti });
      clock += 1;
      await expect(gateway.authenticate(`Bearer ${token}`, undefined)).rejects.toThrow(new AuthenticationError('the session has been logged out: log in again'));
      await expect(gateway.authenticate(`Bearer ${token}`, undefined)).rejects.toBeInstanceOf(AuthenticationError);
      expect(auth.count(STATUS)).toBe(3); // the warm-up, then once per bound: the "revoked" answer is cached as well
    } finally {
      jest.restoreAllMocks();
    }
  });

  it('refuses a token without a session id, and never asks auth about a token whose signature fails', async () => {
    const gateway = authenticator();
    await expect(gateway.authenticate(`Bearer ${await session({ jti: '' })}`, undefined)).rejects.toThrow('the session token has no session id ("jti"): log in again');
    const forged = await new SignJWT({ scopes: ['admin'] })
      .setProtectedHeader({ alg: SESSION_ALGORITHM, kid: KID })
      .setSubject('user-1')
      .setJti('forged')
      .setIssuer(SESSION_ISSUER)
      .setAudience(SESSION_AUDIENCE)
      .setExpirationTime('1h')
      .sign(generateKeyPairSync('ed25519').privateKey);
    await expect(gateway.authenticate(`Bearer ${forged}`, undefined)).rejects.toThrow(
      'the session token is not valid (ERR_JWS_SIGNATURE_VERIFICATION_FAILED): expected a token from signUp or login, or an API key starting with "sk-"',
    );
    expect(auth.count(STATUS)).toBe(0);
  });

  it('answers 503 when the session status cannot be checked', async () => {
    auth.failNext = 1;
    await expect(authenticator().authenticate(`Bearer ${await session()}`, undefined)).rejects.toBeInstanceOf(KeysUnavailableError);
  });
});

describe('while auth cannot be asked (stale if error)', () => {
  it("keeps each known credential's last answer, positive or negative, refuses an unknown one with 503, and asks auth again once it answers", async () => {
    const served: string[] = [];
    // Patience far beyond any stall of a loaded machine: each stand-in here is for auth's answer, not its delay.
    const gateway = authenticator({ cacheMs: 100, staleIfErrorMs: 60_000, stalePatienceMs: 60_000, onStaleAnswer: (credential, error) => served.push(`${credential} ${error.reason}`) });
    const key = newKey();
    const loggedOut = randomBytes(8).toString('hex');
    auth.revokedSessions.add(loggedOut);
    const [token, loggedOutToken] = await Promise.all([session({ jti: 'kept' }), session({ jti: loggedOut })]);
    await gateway.authenticate(`Bearer ${key.secret}`, undefined);
    await gateway.authenticate(`Bearer ${token}`, undefined);
    await expect(gateway.authenticate('Bearer sk-forged-forged', undefined)).rejects.toBeInstanceOf(AuthenticationError);
    await expect(gateway.authenticate(`Bearer ${loggedOutToken}`, undefined)).rejects.toBeInstanceOf(AuthenticationError);
    await sleep(150); // every answer has expired

    auth.storeDown = true;
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).resolves.toMatchObject({ keyId: key.keyId });
    await expect(gateway.authenticate(`Bearer ${token}`, undefined)).resolves.toMatchObject({ sessionId: 'kept' });
    // Three outages in a row open the breaker: the rest are not even asked.
    const asked = auth.asked.length;
    await expect(gateway.authenticate('Bearer sk-forged-forged', undefined)).rejects.toBeInstanceOf(AuthenticationError);
    await expect(gateway.authenticate(`Bearer ${loggedOutToken}`, undefined)).rejects.toThrow(new AuthenticationError('the session has been logged out: log in again'));
    const unknown = gateway.authenticate(`Bearer ${newKey().secret}`, undefined);
    await expect(unknown).rejects.toBeInstanceOf(KeysUnavailableError);
    await expect(unknown).rejects.toMatchObject({ reason: 'CIRCUIT_OPEN' });
    expect(auth.asked.length).toBe(asked + 1);
    expect(served).toEqual(['api-key STORE_UNAVAILABLE', 'session STORE_UNAVAILABLE', 'api-key STORE_UNAVAILABLE', 'session CIRCUIT_OPEN']);

    auth.storeDown = false;
    auth.keys.delete(key.secret); // revoked while auth was down
    await sleep(1_100); // the breaker lets a probe through
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).rejects.toThrow(new AuthenticationError(INVALID_KEY_MESSAGE));
  });

  it('waits stalePatienceMs for a slow auth when an earlier answer can stand in, then uses it (a timeout)', async () => {
    const served: string[] = [];
    const gateway = authenticator({ cacheMs: 100, staleIfErrorMs: 60_000, stalePatienceMs: 50, onStaleAnswer: (credential, error) => served.push(`${credential} ${error.reason}`) });
    const key = newKey();
    await gateway.authenticate(`Bearer ${key.secret}`, undefined);
    await sleep(150);
    auth.delayMs = 3_000;
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).resolves.toMatchObject({ keyId: key.keyId });
    expect(served).toEqual(['api-key TIMEOUT']);
  });

  it('keeps the refusal when the link to auth is broken rather than down (auth answering 500 or refusing the gateway)', async () => {
    const gateway = authenticator({ cacheMs: 100, staleIfErrorMs: 60_000 });
    const key = newKey();
    await gateway.authenticate(`Bearer ${key.secret}`, undefined);
    await sleep(150);
    auth.failNext = 1;
    await expect(gateway.authenticate(`Bearer ${key.secret}`, undefined)).rejects.toMatchObject({ reason: 'BAD_ANSWER' });
  });

  it('names a refused connection and a store that is down as outages', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(authenticator({ authUrl: `http://127.0.0.1:${port}` }).authenticate(`Bearer ${newKey().secret}`, undefined)).rejects.toMatchObject({ reason: 'CONNECTION_FAILED', outage: true });
    auth.storeDown = true;
    await expect(authenticator().authenticate(`Bearer ${newKey().secret}`, undefined)).rejects.toMatchObject({ reason: 'STORE_UNAVAILABLE', outage: true });
  });
});

describe('the Authorization header', () => {
  it('without one, the caller is anonymous, still with their address', async () => {
    await expect(authenticator().authenticate(undefined, '192.0.2.1')).resolves.toEqual({ sub: null, scopes: [], ip: '192.0.2.1' });
    await expect(authenticator().authenticate('  ', undefined)).resolves.toEqual({ sub: null, scopes: [] });
  });

  it('says what was expected without echoing the value', async () => {
    const gateway = authenticator();
    await expect(gateway.authenticate('sk-pasted-without-scheme', undefined)).rejects.toThrow(
      new AuthenticationError('the Authorization header is not of the form "Bearer <credential>": expected "Bearer <session token or API key>"'),
    );
    await expect(gateway.authenticate('Bearer ', undefined)).rejects.toThrow('the Authorization header has nothing after "Bearer": expected "Bearer <session token or API key>"');
    expect(auth.asked).toHaveLength(0);
  });
});
