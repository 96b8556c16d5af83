import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { ErrorCode, codedError } from '../../lib/errors';
import { withoutHash, type ApiKey, type ApiKeyStore } from './api-key-store';
import { isScope, type Scope } from './scopes';

export const SECRET_PREFIX = 'sk-';
/** `sk-` then the base64url of 32 random bytes (43 characters, no padding). */
const SECRET_FORMAT = /^sk-[A-Za-z0-9_-]{43}$/;
const SECRET_BYTES = 32;
/** How much of the secret is kept in clear for its owner to recognise it: `sk-` and 5 characters (30 bits). */
const PREFIX_LENGTH = 8;
const MAX_NAME = 100;

export interface CreatedApiKey {
  /** Shown once: only its hash is kept. */
  secret: string;
  apiKey: ApiKey;
}

/**
 * The secret's SHA-256. A key's secret carries 256 random bits, so a fast hash
 * is enough: a slow, salted hash (as for passwords) guards low-entropy secrets
 * against guessing, and nothing can guess 2^256. A fast hash also lets the
 * gateway's verification be a single index lookup.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Creating, listing, revoking and verifying API keys. */
export class ApiKeys {
  constructor(
    private readonly store: ApiKeyStore,
    private readonly options: { now?: () => Date; touchIntervalMs?: number } = {},
  ) {}

  /**
   * A new key for `userId` with at most the caller's own scopes: a key can
   * never do more than the credential that created it (so `admin` only from an admin).
   */
  async create(userId: string, callerScopes: readonly string[], name: string, scopes: readonly string[]): Promise<CreatedApiKey> {
    const cleanName = name.trim();
    if (cleanName.length === 0 || cleanName.length > MAX_NAME) {
      throw codedError(ErrorCode.BadUserInput, `createApiKey expects "name" to be 1 to ${MAX_NAME} characters, but got ${JSON.stringify(name.slice(0, 300))}`, { field: 'name' });
    }
    const wanted = [...new Set(scopes)];
    const unknown = wanted.filter((scope) => !isScope(scope));
    if (wanted.length === 0 || unknown.length > 0) {
      throw codedError(ErrorCode.BadUserInput, `createApiKey expects "scopes" to list at least one known scope, but got ${JSON.stringify(scopes)}`, { field: 'scopes' });
    }
    const missing = wanted.filter((scope) => !callerScopes.includes(scope));
    if (missing.length > 0) {
      throw codedError(ErrorCode.Forbidden, `createApiKey cannot grant scopes the caller does not hold: missing ${missing.join(', ')} (the caller has ${callerScopes.join(', ') || 'none'})`, {
        field: 'scopes',
        missingScopes: missing,
      });
    }
    const secret = SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64url');
    const apiKey: ApiKey = {
      id: randomUUID(),
      userId,
      name: cleanName,
      scopes: wanted as Scope[],
      prefix: secret.slice(0, PREFIX_LENGTH),
      createdAt: this.now(),
      lastUsedAt: null,
      revokedAt: null,
    };
    if (!(await this.store.create({ ...apiKey, secretHash: hashSecret(secret) }))) {
      throw codedError(ErrorCode.InternalServerError, 'createApiKey drew a secret that is already in use; try again');
    }
    return { secret, apiKey };
  }

  list(userId: string): Promise<ApiKey[]> {
    return this.store.listByUser(userId);
  }

  /** Someone else's key and an unknown id get the same NOT_FOUND, so ids cannot be probed. */
  async revoke(userId: string, id: string): Promise<ApiKey> {
    const revoked = await this.store.revoke(id, userId, this.now());
    if (!revoked) throw codedError(ErrorCode.NotFound, `revokeApiKey found no API key with id ${JSON.stringify(id.slice(0, 100))} among yours`, { field: 'id' });
    return revoked;
  }

  /**
   * The key a secret belongs to, or null when the secret is malformed, unknown
   * or revoked (the caller must not learn which). The index is keyed by the
   * secret's hash, so look-up timing says nothing about stored secrets; the
   * final comparison is constant-time all the same.
   */
  async verify(secret: string): Promise<ApiKey | null> {
    if (!SECRET_FORMAT.test(secret)) return null;
    const hash = hashSecret(secret);
    const id = await this.store.idBySecretHash(hash);
    const stored = id ? await this.store.byId(id) : null;
    if (!stored || stored.revokedAt) return null;
    if (!timingSafeEqual(Buffer.from(stored.secretHash, 'hex'), Buffer.from(hash, 'hex'))) return null;
    const now = this.now();
    const interval = this.options.touchIntervalMs ?? 60_000;
    // Checked here first so that most verifications cost no write at all.
    if (!stored.lastUsedAt || now.getTime() - stored.lastUsedAt.getTime() >= interval) {
      if (await this.store.touch(stored.id, now, interval)) stored.lastUsedAt = now;
    }
    return withoutHash(stored);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }
}
