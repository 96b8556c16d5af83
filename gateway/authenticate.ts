import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import { ErrorCode } from '../lib/errors';
import type { IdentityClaims } from '../lib/identity';
import { SESSION_ALGORITHM, SESSION_AUDIENCE, SESSION_ISSUER } from '../lib/session-token';

/** Why a caller's credentials were refused; the gateway answers 401 with this message. */
export class AuthenticationError extends Error {
  readonly code = ErrorCode.Unauthenticated;
  override name = 'AuthenticationError';
}

/** The auth service's keys could not be fetched: the gateway answers 503, not 401. */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}

export const ANONYMOUS: IdentityClaims = { sub: null, scopes: [] };

export interface AuthenticatorOptions {
  /** Where the auth service publishes its session-token keys. */
  jwksUrl: string;
}

/**
 * Turns an `Authorization` header into the caller's claims. No header means an
 * anonymous caller (who reaches only public fields); a header that is present
 * but invalid is refused outright rather than downgraded to anonymous, so a
 * client with an expired session learns it at once.
 *
 * Session JWTs are verified locally against the auth service's JWKS (fetched
 * once, then re-fetched when a token names an unknown key id, which is how a
 * rotated key is picked up).
 */
export class Authenticator {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(options: AuthenticatorOptions) {
    this.jwks = createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  }

  async authenticate(authorization: string | undefined): Promise<IdentityClaims> {
    if (authorization === undefined || authorization.trim() === '') return ANONYMOUS;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new AuthenticationError('the Authorization header expects "Bearer <token>"');
    return this.verifySession(match[1]);
  }

  private async verifySession(token: string): Promise<IdentityClaims> {
    try {
      const { payload } = await jwtVerify(token, this.jwks, {
        issuer: SESSION_ISSUER,
        audience: SESSION_AUDIENCE,
        algorithms: [SESSION_ALGORITHM],
      });
      if (typeof payload.sub !== 'string') throw new AuthenticationError('the session token has no subject');
      const scopes = Array.isArray(payload.scopes) ? payload.scopes.filter((s): s is string => typeof s === 'string') : [];
      return { sub: payload.sub, scopes };
    } catch (error) {
      if (error instanceof AuthenticationError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError('the session token has expired: log in again');
      if (error instanceof joseErrors.JWKSTimeout) throw new KeysUnavailableError(error.message);
      if (error instanceof joseErrors.JOSEError) throw new AuthenticationError(`the session token is not valid (${error.code})`);
      // A network failure fetching the JWKS says nothing about the token.
      throw new KeysUnavailableError((error as Error).message);
    }
  }
}
