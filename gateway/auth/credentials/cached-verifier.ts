import { createHmac, randomBytes } from 'node:crypto';
import type { ApiKeyAnswer, AuthServiceClient } from './auth-service-client';
import type { VerificationCache } from './verification-cache';

/**
 * The auth service's answers, cached (see VerificationCache for the bound).
 *
 * API-key answers are held under an HMAC of the secret with a key born and
 * kept in this process: the secret itself is never stored, and the stored
 * value matches nothing outside this process (not even the hashes in auth's
 * store), so a heap dump yields no usable key. Session answers are held under
 * the token's `jti`, which is no secret: it grants nothing without the signed
 * token around it.
 */
export class CachedCredentialVerifier {
  private readonly fingerprintKey = randomBytes(32);

  constructor(
    private readonly client: AuthServiceClient,
    private readonly apiKeys: VerificationCache<ApiKeyAnswer>,
    private readonly sessions: VerificationCache<boolean>,
  ) {}

  verifyApiKey(secret: string): Promise<ApiKeyAnswer> {
    return this.apiKeys.get(this.fingerprint(secret), () => this.client.verifyApiKey(secret));
  }

  sessionRevoked(sessionId: string): Promise<boolean> {
    return this.sessions.get(sessionId, () => this.client.sessionRevoked(sessionId));
  }

  private fingerprint(secret: string): string {
    return createHmac('sha256', this.fingerprintKey).update(secret).digest('base64url');
  }
}
