import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { remember } from './bounded-map';
import { envSecret } from './config';

/**
 * The signed identity the gateway forwards to every subgraph (DESIGN §4).
 *
 * Subgraphs never see the caller's token: they see this short-lived claim,
 * signed with Ed25519 by the gateway. Only the gateway holds the private key,
 * so a subgraph (or anyone who reaches one directly) can verify an identity
 * but never mint or raise one; a service calling a sibling forwards the header
 * it received, unchanged. Each header names its audience, the services it may
 * be presented to (lib/service-calls.ts): a header one subgraph received is
 * refused by any service it was not also signed for.
 *
 * Wire format: `v2.<base64url(JSON claims)>.<base64url(signature over "v2.<claims>")>`.
 * v1 (an older gateway's, without an audience) is refused, not read as "any
 * service" (README, "Security model": roll the gateway and the subgraphs together).
 */
export const IDENTITY_HEADER = 'x-sluice-identity';

export interface Identity {
  /** The user id, or null for an anonymous caller (who may only reach public fields). */
  sub: string | null;
  scopes: string[];
  /** The API key the caller used, when it used one. */
  keyId?: string;
  /** The session (the session token's `jti`) the caller used, when it used one. */
  sessionId?: string;
  /** The caller's address as the gateway saw it, for per-IP limits (login throttling). */
  ip?: string;
  /** Issued-at and expiry, seconds since the epoch. */
  iat: number;
  exp: number;
}

/** What the header carries: the identity and the services it may be presented to (a matter for the verifier, not for resolvers). */
interface SignedClaims extends Identity {
  /** The service the gateway sent the header to, and the siblings that one forwards it to. */
  aud: readonly string[];
}

export type IdentityClaims = Pick<Identity, 'sub' | 'scopes' | 'keyId' | 'sessionId' | 'ip'>;

export class IdentityError extends Error {
  override name = 'IdentityError';
}

const VERSION = 'v2';
/** The format before audiences, named in its refusal so that a mixed-version deployment is diagnosed at once. */
const AUDIENCELESS_VERSION = 'v1';
/** Clock skew tolerated between the gateway's and a subgraph's clocks. */
const SKEW_SECONDS = 5;
/**
 * How many signed headers a signer keeps for reuse, and a verifier keeps as
 * verified: one per caller and audience active within a lifetime (a caller
 * reaches one to four subgraphs), so the bound only bites with thousands of
 * distinct callers in a minute (then the oldest go).
 */
const REMEMBERED = 10_000;

export class IdentitySigner {
  private readonly recent = new Map<string, { header: string; at: number }>();

  constructor(
    private readonly privateKey: KeyObject,
    /** How long a signed identity stays valid; it only has to outlive one request. */
    readonly ttlSeconds = 60,
  ) {}

  /** A new header for `claims`, to be presented to the services in `audience` only. */
  sign(claims: IdentityClaims, audience: readonly string[], now = Date.now()): string {
    if (audience.length === 0) throw new TypeError('IdentitySigner.sign expects an audience of at least one service, but got none');
    const iat = Math.floor(now / 1000);
    const body: SignedClaims = { sub: claims.sub, scopes: claims.scopes, aud: audience, iat, exp: iat + this.ttlSeconds };
    if (claims.keyId) body.keyId = claims.keyId;
    if (claims.sessionId) body.sessionId = claims.sessionId;
    if (claims.ip) body.ip = claims.ip;
    const payload = `${VERSION}.${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
    const signature = sign(null, Buffer.from(payload), this.privateKey).toString('base64url');
    return `${payload}.${signature}`;
  }

  /**
   * A header for `claims` and `audience`: the one signed for the same less than half
   * a lifetime ago, else a new one. Signing (and each subgraph verifying) one
   * header per request was a tenth of the CPU a federated request costs; a
   * reused header is still valid for at least half its lifetime, long enough
   * for any request, and the gateway authenticates every request before it
   * asks, so a revoked key or session never gets one.
   */
  current(claims: IdentityClaims, audience: readonly string[], now = Date.now()): string {
    const key = JSON.stringify([claims.sub, claims.scopes, claims.keyId ?? null, claims.sessionId ?? null, claims.ip ?? null, audience]);
    const last = this.recent.get(key);
    if (last && now >= last.at && now - last.at <= (this.ttlSeconds * 1000) / 2) return last.header;
    const header = this.sign(claims, audience, now);
    remember(this.recent, key, { header, at: now }, REMEMBERED);
    return header;
  }
}

export class IdentityVerifier {
  /** Headers whose signature and claims checked out, with their claims: a header is verified once, its times and audience on every use. */
  private readonly verified = new Map<string, SignedClaims>();

  constructor(private readonly publicKeys: KeyObject[]) {
    if (publicKeys.length === 0) throw new TypeError('IdentityVerifier expects at least one public key');
  }

  /**
   * Returns the identity, or throws an IdentityError saying what was wrong
   * with the header; `service` is the verifying service's name, which the
   * header's audience must include.
   */
  verify(header: string | undefined, service: string, now = Date.now()): Identity {
    if (!header) throw new IdentityError(`missing ${IDENTITY_HEADER} header: requests must come through the gateway`);
    const remembered = this.verified.get(header);
    const identity = remembered ?? this.checkSignatureAndClaims(header);
    const seconds = now / 1000;
    if (identity.exp + SKEW_SECONDS < seconds) {
      throw new IdentityError(`${IDENTITY_HEADER} header expired at ${new Date(identity.exp * 1000).toISOString()}`);
    }
    if (identity.iat - SKEW_SECONDS > seconds) {
      throw new IdentityError(`${IDENTITY_HEADER} header was issued in the future`);
    }
    if (!identity.aud.includes(service)) {
      throw new IdentityError(`${IDENTITY_HEADER} header was issued for ${identity.aud.join(', ')}; expected one issued for ${service}`);
    }
    // Only a header usable here and now is remembered: replayed or misdirected ones must not push out live ones.
    if (!remembered) remember(this.verified, header, identity, REMEMBERED);
    return identity;
  }

  private checkSignatureAndClaims(header: string): SignedClaims {
    const parts = header.split('.');
    if (parts.length === 3 && parts[0] === AUDIENCELESS_VERSION) {
      throw new IdentityError(`${IDENTITY_HEADER} header is ${AUDIENCELESS_VERSION}, which names no audience; expected ${VERSION} (is the gateway older than this service?)`);
    }
    if (parts.length !== 3 || parts[0] !== VERSION) {
      throw new IdentityError(`malformed ${IDENTITY_HEADER} header: expected "${VERSION}.<claims>.<signature>"`);
    }
    const payload = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2], 'base64url');
    if (!this.publicKeys.some((key) => verify(null, payload, key, signature))) {
      throw new IdentityError(`${IDENTITY_HEADER} header has an invalid signature`);
    }
    let identity: SignedClaims;
    try {
      identity = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as SignedClaims;
    } catch {
      throw new IdentityError(`${IDENTITY_HEADER} header claims are not valid JSON`);
    }
    if (typeof identity.exp !== 'number' || typeof identity.iat !== 'number') {
      throw new IdentityError(`${IDENTITY_HEADER} header claims expect "iat" and "exp" (seconds since the epoch)`);
    }
    if (!Array.isArray(identity.scopes) || (identity.sub !== null && typeof identity.sub !== 'string')) {
      throw new IdentityError(`${IDENTITY_HEADER} header claims expect "sub" (string or null) and "scopes" (array)`);
    }
    if (!Array.isArray(identity.aud) || identity.aud.length === 0 || !identity.aud.every((name) => typeof name === 'string')) {
      throw new IdentityError(`${IDENTITY_HEADER} header claims expect "aud" (a non-empty array of service names), but got ${JSON.stringify(identity.aud)}`);
    }
    // Shared by every request that carries this header: nobody may change it.
    Object.freeze(identity.scopes);
    Object.freeze(identity.aud);
    return Object.freeze(identity);
  }
}

/** When `identity` stops being accepted (its expiry plus the tolerated clock skew), in ms since the epoch. */
export function identityDeadline(identity: Identity): number {
  return (identity.exp + SKEW_SECONDS) * 1000;
}

export function generateIdentityKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The gateway's signing key: `SLUICE_IDENTITY_PRIVATE_KEY` or `SLUICE_IDENTITY_PRIVATE_KEY_FILE` (Ed25519, PKCS#8 PEM). */
export function identitySignerFromEnv(ttlSeconds?: number): IdentitySigner {
  const pem = envSecret('SLUICE_IDENTITY_PRIVATE_KEY');
  if (!pem) {
    throw new IdentityError('SLUICE_IDENTITY_PRIVATE_KEY (or SLUICE_IDENTITY_PRIVATE_KEY_FILE) is required: the Ed25519 key the gateway signs identities with');
  }
  return new IdentitySigner(createPrivateKey(pem), ttlSeconds);
}

/**
 * The subgraphs' verification keys: `SLUICE_IDENTITY_PUBLIC_KEY` (or `_FILE`),
 * which may hold several PEM blocks so that a key can be rotated without downtime.
 */
export function identityVerifierFromEnv(): IdentityVerifier {
  const pem = envSecret('SLUICE_IDENTITY_PUBLIC_KEY');
  if (!pem) {
    throw new IdentityError("SLUICE_IDENTITY_PUBLIC_KEY (or SLUICE_IDENTITY_PUBLIC_KEY_FILE) is required: the gateway's Ed25519 public key(s)");
  }
  const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  return new IdentityVerifier(blocks.map((block) => createPublicKey(block)));
}
