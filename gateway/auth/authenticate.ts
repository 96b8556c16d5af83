import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, type JWSHeaderParameters, type JWKSCacheInput, jwksCache, jwtVerify, type KeyLike } from 'jose';
import type { IdentityClaims, IdentitySigner } from '../../lib/identity';
import { SESSION_ALGORITHM, SESSION_AUDIENCE, SESSION_ISSUER } from '../../lib/session-token';
import { AuthServiceClient } from './credentials/auth-service-client';
import { CachedCredentialVerifier } from './credentials/cached-verifier';
import { AuthenticationError, isAuthOutage, KeysUnavailableError } from './credentials/errors';
import { type CredentialSharing, shareCredentialAnswers, type SessionKeys } from './credentials/shared-answers';
import { VerificationCache } from './credentials/verification-cache';
import { VerifiedTokens } from './credentials/verified-tokens';

export { AuthenticationError, KeysUnavailableError };

/** Every API key the auth service hands out starts with this; a session JWT never does. */
const API_KEY_PREFIX = 'sk-';
/** Far above any key auth issues; longer values are refused here rather than sent (auth would refuse the body as too large: a 503, not a 401). */
const MAX_API_KEY_LENGTH = 256;
const EXPECTED = 'expected "Bearer <session token or API key>"';
const INVALID_KEY = 'the API key is not valid (unknown, malformed or revoked): create a new one with createApiKey';

export interface AuthenticatorOptions {
  /** Where the auth service publishes its session-token keys. */
  jwksUrl: string;
  /** The auth service's base URL, for its internal API-key and session routes. */
  authUrl: string;
  /** Signs the gateway's own identity on calls to those routes. */
  signer: IdentitySigner;
  /** How long auth's answers are cached: the bound on how long a revoked key or logged-out session keeps working here. */
  cacheMs: number;
  /** The most answers kept per cache (API keys, sessions). @default 10000 */
  cacheEntries?: number;
  /**
   * How long past its expiry auth's last answer for a credential stands in
   * while auth cannot be asked (unreachable, timed out, its breaker open, its
   * store down); 0 refuses with 503 as soon as the answer expires. @default 0
   */
  staleIfErrorMs?: number;
  /**
   * How long a request whose credential has such an earlier answer waits for
   * auth's fresh one before using it. Auth answers in milliseconds when well;
   * one that is hung, or waiting on a Redis that is away, would otherwise hold
   * each such request for the client's whole timeout (5 s) until its breaker
   * opens. @default 1000
   */
  stalePatienceMs?: number;
  /** Told of each request let through (or refused) on such an earlier answer: which kind of credential, and the outage it stood in for. */
  onStaleAnswer?: (credential: 'api-key' | 'session', error: KeysUnavailableError, ageMs: number) => void;
}

/**
 * Turns an `Authorization` header and the caller's address into claims, with
 * the same rules for HTTP and graphql-ws `connection_init`.
 *
 * - No header: an anonymous caller (who reaches only public fields).
 * - `Bearer sk-…`: an API key, verified by the auth service (cached).
 * - `Bearer <JWT>`: a session token, verified locally against auth's JWKS
 *   (fetched once, re-fetched when a token names an unknown key id, which is
 *   how a rotated key is picked up), then checked against logout (cached).
 *
 * A header that is present but invalid is refused outright rather than
 * downgraded to anonymous, so a client with a bad credential learns it at once;
 * when the credential cannot be checked at all the caller gets 503 (KeysUnavailableError).
 * While auth cannot be asked, its last answer for the credential stands in for
 * up to `staleIfErrorMs` past its expiry (README, "While auth is down").
 */
export class Authenticator {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;
  /** What jose fetched last (it writes here on every fetch), to pass on to the other workers. */
  private readonly fetchedKeys: JWKSCacheInput = {};
  private sharedKeysAt: number | undefined;
  /** Auth's keys as another worker fetched them: used while this worker cannot fetch them itself. */
  private learnedKeys: { uat: number; keySet: ReturnType<typeof createLocalJWKSet> } | undefined;
  private readonly sharing: CredentialSharing | undefined;
  private readonly verifier: CachedCredentialVerifier;
  private readonly verifiedTokens: VerifiedTokens<IdentityClaims & { sessionId: string }>;

  constructor(options: AuthenticatorOptions) {
    // A token naming an unknown key id (a rotation) triggers a re-fetch; the cool-down only stops a flood of forged kids.
    this.jwks = createRemoteJWKSet(new URL(options.jwksUrl), { cooldownDuration: 1_000, cacheMaxAge: 10 * 60_000, [jwksCache]: this.fetchedKeys });
    const cache = (credential: 'api-key' | 'session') => ({
      ttlMs: options.cacheMs,
      maxEntries: options.cacheEntries ?? 10_000,
      staleIfError: {
        ms: options.staleIfErrorMs ?? 0,
        when: isAuthOutage,
        patienceMs: options.stalePatienceMs ?? 1_000,
        onServe: (error: unknown, ageMs: number) => options.onStaleAnswer?.(credential, asKeysUnavailable(error), ageMs),
      },
    });
    this.verifiedTokens = new VerifiedTokens(options.cacheEntries ?? 10_000);
    // Session answers and keys go to the gateway's other worker processes and theirs come here (credentials/shared-answers.ts).
    const sessions: VerificationCache<boolean> = new VerificationCache({
      ...cache('session'),
      onAnswer: (sessionId, revoked, askedAt) => this.sharing?.shareSession({ sessionId, revoked, askedAt }),
    });
    this.sharing = shareCredentialAnswers({
      session: ({ sessionId, revoked, askedAt }) => sessions.learn(sessionId, revoked, askedAt),
      keys: (keys) => this.learnKeys(keys),
    });
    this.verifier = new CachedCredentialVerifier(new AuthServiceClient(options.authUrl, options.signer), new VerificationCache(cache('api-key')), sessions);
    // Fetched now rather than at the first session token, so a worker that has verified none yet can while auth is down;
    // a failure here is no news (the first token fetches again, and answers 503 if it still cannot).
    void this.jwks.reload().then(
      () => this.shareFetchedKeys(),
      () => undefined,
    );
  }

  /** The caller's claims; `ip` is the caller's address as the gateway saw it (see clientIp). */
  async authenticate(authorization: string | undefined, ip: string | undefined): Promise<IdentityClaims> {
    const claims = await this.claimsOf(authorization);
    return ip ? { ...claims, ip } : claims;
  }

  private async claimsOf(authorization: string | undefined): Promise<IdentityClaims> {
    if (authorization === undefined || authorization.trim() === '') return { sub: null, scopes: [] };
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    // Never echo the value: without the scheme, it may well be the secret itself.
    if (!match) {
      const reason = /^Bearer\s*$/i.test(authorization.trim()) ? 'has nothing after "Bearer"' : 'is not of the form "Bearer <credential>"';
      throw new AuthenticationError(`the Authorization header ${reason}: ${EXPECTED}`);
    }
    const credential = match[1];
    return credential.startsWith(API_KEY_PREFIX) ? this.verifyApiKey(credential) : this.verifySession(credential);
  }

  private async verifyApiKey(secret: string): Promise<IdentityClaims> {
    if (secret.length > MAX_API_KEY_LENGTH) throw new AuthenticationError(INVALID_KEY);
    const answer = await this.verifier.verifyApiKey(secret);
    if (!answer.valid) throw new AuthenticationError(INVALID_KEY);
    return { sub: answer.sub, scopes: answer.scopes, keyId: answer.keyId };
  }

  private async verifySession(token: string): Promise<IdentityClaims> {
    const known = this.verifiedTokens.get(token);
    const claims = known ?? (await this.verifySignature(token));
    // Checked only after the signature, so garbage tokens never reach auth; checked every time, so logout takes effect.
    if (await this.verifier.sessionRevoked(claims.sessionId)) throw new AuthenticationError('the session has been logged out: log in again');
    return claims;
  }

  private async verifySignature(token: string): Promise<IdentityClaims & { sessionId: string }> {
    let sub: string;
    let scopes: string[];
    let sessionId: string;
    let expiresAt: number;
    try {
      const { payload } = await jwtVerify(token, this.sessionKey, {
        issuer: SESSION_ISSUER,
        audience: SESSION_AUDIENCE,
        algorithms: [SESSION_ALGORITHM],
      });
      if (typeof payload.sub !== 'string') throw new AuthenticationError('the session token has no subject ("sub"): log in again');
      if (typeof payload.jti !== 'string') throw new AuthenticationError('the session token has no session id ("jti"): log in again');
      sub = payload.sub;
      sessionId = payload.jti;
      // jose refuses an expired token, and a token without `exp` is checked again after a minute.
      expiresAt = typeof payload.exp === 'number' ? payload.exp * 1000 : Date.now() + 60_000;
      scopes = Array.isArray(payload.scopes) ? payload.scopes.filter((s): s is string => typeof s === 'string') : [];
    } catch (error) {
      if (error instanceof AuthenticationError) throw error;
      if (error instanceof joseErrors.JWTExpired) throw new AuthenticationError('the session token has expired: log in again');
      const unavailable = keysUnavailable(error);
      if (unavailable) throw unavailable;
      throw new AuthenticationError(`the session token is not valid (${(error as joseErrors.JOSEError).code}): expected a token from signUp or login, or an API key starting with "${API_KEY_PREFIX}"`);
    }
    this.shareFetchedKeys();
    const claims = { sub, scopes, sessionId };
    this.verifiedTokens.set(token, claims, expiresAt);
    return claims;
  }

  /** Auth's key for a token: fetched by this worker, or, while auth cannot be asked, as another worker last fetched it. */
  private readonly sessionKey = async (header: JWSHeaderParameters, token: Parameters<ReturnType<typeof createRemoteJWKSet>>[1]): Promise<KeyLike> => {
    try {
      return await this.jwks(header, token);
    } catch (error) {
      if (!this.learnedKeys || !keysUnavailable(error)?.outage) throw error;
      return this.learnedKeys.keySet(header, token);
    }
  };

  private learnKeys(keys: SessionKeys): void {
    if (keys.uat > (this.learnedKeys?.uat ?? -Infinity)) this.learnedKeys = { uat: keys.uat, keySet: createLocalJWKSet(keys.jwks) };
  }

  /** Passes jose's latest fetch on to the other workers, once per fetch. */
  private shareFetchedKeys(): void {
    const fetched = this.fetchedKeys;
    if (!('uat' in fetched) || fetched.uat === this.sharedKeysAt) return;
    this.sharedKeysAt = fetched.uat;
    this.sharing?.shareKeys({ uat: fetched.uat, jwks: fetched.jwks });
  }
}

/** Why the keys could not be had, if `error` says so rather than something about the token (which any JOSE error but these does). */
function keysUnavailable(error: unknown): KeysUnavailableError | undefined {
  if (error instanceof KeysUnavailableError) return error;
  if (error instanceof joseErrors.JWKSTimeout) return new KeysUnavailableError(error.message, 'TIMEOUT');
  // A JWKS that cannot be fetched or read (auth answering 503, a broken body) says nothing about the token.
  if (error instanceof joseErrors.JWKSInvalid || (error instanceof joseErrors.JOSEError && error.code === 'ERR_JOSE_GENERIC')) {
    return new KeysUnavailableError(`the session-token keys cannot be read: ${error.message}`, 'BAD_ANSWER');
  }
  if (error instanceof joseErrors.JOSEError) return undefined;
  // A network failure fetching the JWKS says nothing about the token.
  return new KeysUnavailableError((error as Error).message, 'CONNECTION_FAILED');
}

/** What an earlier answer stood in for: auth's failure, or (OverdueAnswer) auth taking longer than stalePatienceMs, a timeout. */
function asKeysUnavailable(error: unknown): KeysUnavailableError {
  return error instanceof KeysUnavailableError ? error : new KeysUnavailableError((error as Error).message, 'TIMEOUT');
}
