import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { exportJWK, JWK, SignJWT } from 'jose';
import { SESSION_ALGORITHM, SESSION_AUDIENCE, SESSION_ISSUER } from '../../lib/session-token';

/**
 * Session tokens: EdDSA (Ed25519) JWTs signed by the auth service and verified
 * by the gateway against the JWKS this module publishes.
 *
 * The signing key lives in Redis (`auth:session-key`) so that every auth
 * replica signs with the same key and sessions survive restarts; the first
 * replica to start creates it (SET NX, so concurrent starts agree on one).
 * `AUTH_SESSION_PRIVATE_KEY` (or `_FILE`, a PKCS#8 PEM) overrides it for
 * operators who keep keys in a secret store.
 */
/** What a signed-in user may do; API keys (issue 5) will carry narrower sets. */
export const SESSION_SCOPES = ['inference:invoke', 'knowledge:read', 'knowledge:write', 'billing:read'];

const KEY = 'auth:session-key';

export interface SessionKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export async function loadSessionKey(redis: Redis, pem?: string): Promise<SessionKey> {
  if (pem) return fromPem(pem);
  const { privateKey } = generateKeyPairSync('ed25519');
  const candidate = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await redis.set(KEY, candidate, 'NX');
  return fromPem((await redis.get(KEY)) as string);
}

function fromPem(pem: string): SessionKey {
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  const der = publicKey.export({ type: 'spki', format: 'der' });
  // A stable key id derived from the key itself, so every replica publishes the same JWKS.
  const kid = createHash('sha256').update(der).digest('base64url').slice(0, 16);
  return { kid, privateKey, publicKey };
}

export class SessionTokens {
  constructor(
    private readonly key: SessionKey,
    /** Session lifetime in seconds. */
    private readonly ttlSeconds: number,
  ) {}

  async issue(userId: string): Promise<{ token: string; expiresAt: Date }> {
    const expiresAt = new Date(Date.now() + this.ttlSeconds * 1000);
    const token = await new SignJWT({ scopes: SESSION_SCOPES })
      .setProtectedHeader({ alg: SESSION_ALGORITHM, kid: this.key.kid, typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(SESSION_ISSUER)
      .setAudience(SESSION_AUDIENCE)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(this.key.privateKey);
    return { token, expiresAt };
  }

  async jwks(): Promise<{ keys: JWK[] }> {
    const jwk = await exportJWK(this.key.publicKey);
    return { keys: [{ ...jwk, kid: this.key.kid, alg: SESSION_ALGORITHM, use: 'sig' }] };
  }
}
