import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type Redis from 'ioredis';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { SESSION_AUDIENCE, SESSION_ISSUER } from '../../lib/session-token';
import { KeySealer } from './key-sealing';
import { keyId, SessionKeyRing } from './session-key-ring';
import { SessionStore } from './session-store';
import { SessionTokens } from './session-tokens';

const RETAIN_MS = 3_600_000;
const SEALER = new KeySealer('a sealing secret for the tests');
let redis: Redis;

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  await redis.flushall();
});

afterEach(() => redis.disconnect());

const pem = () => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const kids = async (ring: SessionKeyRing, now?: number) => (await ring.jwks(now)).keys.map((k) => k.kid);

describe('SessionKeyRing', () => {
  it('creates one key at first start, which every replica then signs with and publishes', async () => {
    const [a, b] = await Promise.all([SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER }), SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER })]);
    expect((await a.signer()).kid).toBe((await b.signer()).kid);
    expect(await kids(a)).toEqual([(await a.signer()).kid]);
    expect(await kids(b)).toEqual(await kids(a));
  });

  it('rotates on one replica and moves every replica to the new key; the old one stays published until its tokens expire, then is deleted', async () => {
    const a = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const b = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const old = (await a.signer()).kid;
    const t0 = Date.now();
    const published = await a.rotate(t0);
    const fresh = (await b.signer()).kid;
    expect(fresh).not.toBe(old);
    expect(published).toEqual([fresh, old]);
    expect(await kids(b, t0 + RETAIN_MS - 1)).toEqual([fresh, old]);
    expect(await kids(b, t0 + RETAIN_MS + 1)).toEqual([fresh]);

    const third = await a.rotate(t0 + RETAIN_MS + 1);
    expect(third).toEqual([(await b.signer()).kid, fresh]);
    expect(await redis.hexists('auth:{session-keys}', old)).toBe(0);
  });

  it('signs tokens that verify against the published JWKS before and after a rotation', async () => {
    const ring = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const tokens = new SessionTokens(ring, new SessionStore(redis, 60_000), 60);
    const before = await tokens.issue('u1', ['knowledge:read']);
    await ring.rotate();
    const after = await tokens.issue('u1', ['knowledge:read']);
    expect(decodeProtectedHeader(after.token).kid).not.toBe(decodeProtectedHeader(before.token).kid);
    const jwks = createLocalJWKSet(await ring.jwks());
    for (const { token, sessionId } of [before, after]) {
      const { payload } = await jwtVerify(token, jwks, { issuer: SESSION_ISSUER, audience: SESSION_AUDIENCE, algorithms: ['EdDSA'] });
      expect(payload).toMatchObject({ sub: 'u1', scopes: ['knowledge:read'], jti: sessionId });
    }
  });

  it('imports the single key of the earlier design (auth:session-key) as the current key, so its sessions stay valid', async () => {
    const legacy = pem();
    await redis.set('auth:session-key', legacy);
    const ring = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const kid = (await ring.signer()).kid;
    expect(await kids(ring)).toEqual([kid]);
    expect(await redis.exists('auth:session-key')).toBe(0);
    // The same id the earlier design derived, so tokens it signed still find their key.
    expect(kid).toBe(keyId(createPublicKey(createPrivateKey(legacy))));
  });

  it('makes AUTH_SESSION_PRIVATE_KEY current once, keeps only its public half in Redis, and does not undo a later rotation on restart', async () => {
    const envPem = pem();
    const first = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER, privateKeyPem: envPem });
    const envKid = (await first.signer()).kid;
    expect(await redis.hget('auth:{session-keys}', envKid)).not.toContain('PRIVATE KEY');

    const [rotated] = await first.rotate();
    const restarted = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER, privateKeyPem: envPem });
    expect((await restarted.signer()).kid).toBe(rotated);
    expect(await kids(restarted)).toEqual([rotated, envKid]);

    const replaced = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER, privateKeyPem: pem() });
    const newEnvKid = (await replaced.signer()).kid;
    expect(newEnvKid).not.toBe(rotated);
    expect(await kids(replaced)).toEqual([newEnvKid, rotated, envKid]);
  });

  it('tells a replica without the environment key which key it lacks instead of signing with another', async () => {
    await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER, privateKeyPem: pem() });
    const without = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    await expect(without.signer()).rejects.toThrow('came from AUTH_SESSION_PRIVATE_KEY on another replica');
  });

  it("keeps no private key in clear in Redis: sealed with the auth service's secret, bound to its id; clear keys of earlier versions are sealed in place", async () => {
    const ring = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const kid = (await ring.signer()).kid;
    const [rotated] = await ring.rotate();
    for (const stored of Object.values(await redis.hgetall('auth:{session-keys}'))) expect(stored).not.toContain('PRIVATE KEY');
    await expect((await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: new KeySealer("another replica's wrong secret") })).signer()).rejects.toThrow(
      `session key ${rotated} does not open with this AUTH_SESSION_SEALING_KEY`,
    );
    const sealed = JSON.parse((await redis.hget('auth:{session-keys}', kid))!) as { sealedPrivateKey: string };
    expect(() => SEALER.open(sealed.sealedPrivateKey, rotated)).toThrow('does not open');

    const clear = pem();
    const clearKid = keyId(createPublicKey(createPrivateKey(clear)));
    await redis.hset('auth:{session-keys}', clearKid, JSON.stringify({ publicKey: createPublicKey(createPrivateKey(clear)).export({ type: 'spki', format: 'pem' }), privateKey: clear }));
    await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const migrated = JSON.parse((await redis.hget('auth:{session-keys}', clearKid))!) as { sealedPrivateKey: string; privateKey?: string };
    expect(migrated.privateKey).toBeUndefined();
    expect(SEALER.open(migrated.sealedPrivateKey, clearKid)).toBe(clear);
  });

  it('changes the sealing secret with a fresh environment key: it signs, and the old keys stay published by their public halves', async () => {
    const old = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: SEALER });
    const oldKid = (await old.signer()).kid;
    const renewed = await SessionKeyRing.open(redis, { retainMs: RETAIN_MS, sealer: new KeySealer('the new sealing secret'), privateKeyPem: pem() });
    const newKid = (await renewed.signer()).kid;
    expect(await kids(renewed)).toEqual([newKid, oldKid]);
  });
});
