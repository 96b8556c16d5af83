import { createHmac, randomBytes } from 'node:crypto';
import { remember } from '../../../lib/bounded-map';

/**
 * Session tokens whose signature, issuer, audience and expiry this process
 * has already checked, with what they claim, until they expire: a signature
 * check (EdDSA) is the largest single cost of a request from a signed-in
 * caller, and a token's answer cannot change before its expiry (logout is
 * checked apart, on every request, through the session-status cache). Held
 * under an HMAC with a key born in this process, like API keys: the token is
 * never stored. At most `maxEntries` are kept; past that the oldest go first.
 */
export class VerifiedTokens<T> {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, { claims: T; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {}

  get(token: string, now = Date.now()): T | undefined {
    const id = this.id(token);
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.expiresAt > now) return entry.claims;
    this.entries.delete(id);
    return undefined;
  }

  set(token: string, claims: T, expiresAt: number): void {
    remember(this.entries, this.id(token), { claims, expiresAt }, this.maxEntries);
  }

  private id(token: string): string {
    return createHmac('sha256', this.key).update(token).digest('base64url');
  }
}
