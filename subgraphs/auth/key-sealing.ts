import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { envSecret } from '../../lib/config';

/**
 * The session-signing private keys are kept in Redis sealed (AES-256-GCM) with
 * a key only the auth service holds (`AUTH_SESSION_SEALING_KEY` or its
 * `_FILE`, a secret like the identity key): every auth replica can sign with
 * the current key and rotation needs no restart, yet a reader of Redis — another
 * service, a backup, anyone with the Redis password — finds no usable private
 * key. Each sealed key is bound to its key id, so a sealed blob moved under
 * another id does not open.
 *
 * Format: `v1.<iv>.<tag>.<ciphertext>`, each base64url.
 */
export class KeySealError extends Error {
  override name = 'KeySealError';
}

const VERSION = 'v1';

export class KeySealer {
  private readonly key: Buffer;

  /** `secret`: any high-entropy string (e.g. 32 random bytes, base64); the AES key is its SHA-256. */
  constructor(secret: string) {
    if (secret.trim().length < 16) throw new KeySealError('AUTH_SESSION_SEALING_KEY expects at least 16 characters of a random secret (e.g. `openssl rand -base64 32`)');
    this.key = createHash('sha256').update(secret.trim()).digest();
  }

  seal(plaintext: string, kid: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv).setAAD(Buffer.from(kid));
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, iv, cipher.getAuthTag(), data].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
  }

  open(sealed: string, kid: string): string {
    const [version, iv, tag, data] = sealed.split('.');
    if (version !== VERSION || !iv || !tag || data === undefined) throw new KeySealError(`session key ${kid}: sealed private key expected as "${VERSION}.<iv>.<tag>.<ciphertext>"`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url')).setAAD(Buffer.from(kid)).setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new KeySealError(`session key ${kid} does not open with this AUTH_SESSION_SEALING_KEY: every auth replica needs the same sealing key`);
    }
  }
}

/** The sealer from `AUTH_SESSION_SEALING_KEY` (or `_FILE`); the auth service refuses to start without one. */
export function keySealerFromEnv(): KeySealer {
  const secret = envSecret('AUTH_SESSION_SEALING_KEY');
  if (!secret)
    throw new KeySealError(
      'AUTH_SESSION_SEALING_KEY (or AUTH_SESSION_SEALING_KEY_FILE) is required: the secret the session-signing private keys are sealed with in Redis (e.g. `openssl rand -base64 32`)',
    );
  return new KeySealer(secret);
}
