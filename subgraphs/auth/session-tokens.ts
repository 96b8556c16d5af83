import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { SESSION_ALGORITHM, SESSION_AUDIENCE, SESSION_ISSUER } from '../../lib/session-token';
import type { SessionKeyRing } from './session-key-ring';
import type { SessionStore } from './session-store';

/**
 * Session tokens: EdDSA (Ed25519) JWTs signed with the key ring's current key
 * and verified by the gateway against the JWKS the ring publishes. Each carries
 * a `jti`, the session id that logout revokes.
 */
export class SessionTokens {
  constructor(
    private readonly keys: SessionKeyRing,
    private readonly sessions: SessionStore,
    /** Session lifetime in seconds. */
    readonly ttlSeconds: number,
  ) {}

  async issue(userId: string, scopes: readonly string[]): Promise<{ token: string; expiresAt: Date; sessionId: string }> {
    const key = await this.keys.signer();
    const sessionId = randomUUID();
    const expiresAt = new Date(Date.now() + this.ttlSeconds * 1000);
    const token = await new SignJWT({ scopes: [...scopes] })
      .setProtectedHeader({ alg: SESSION_ALGORITHM, kid: key.kid, typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(SESSION_ISSUER)
      .setAudience(SESSION_AUDIENCE)
      .setJti(sessionId)
      .setIssuedAt()
      .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
      .sign(key.privateKey);
    await this.sessions.recordIssued(sessionId, expiresAt);
    return { token, expiresAt, sessionId };
  }
}
