/**
 * A short-lived cache of answers from the auth service (API-key verifications,
 * session statuses), so a busy caller does not cost one auth round trip per
 * request.
 *
 * - An answer is kept for `ttlMs` counted from when the question was *sent*,
 *   not from when the answer arrived: auth's answer describes its state at some
 *   moment after sending, so `ttlMs` is a true bound on how long a revoked key
 *   or a logged-out session keeps working at this gateway.
 * - Negative answers ("not valid", "revoked") are cached too: a client retrying
 *   a bad key in a loop must not turn into a loop against auth.
 * - Concurrent look-ups of one key share one question, as long as that
 *   question is younger than `ttlMs` (a slow auth must not stretch the bound).
 * - Failures (auth unreachable) are never cached: the next request asks again.
 * - At most `maxEntries` answers are kept; past that the oldest go first (all
 *   answers have the same lifetime, so the oldest is also the nearest to
 *   expiring). Callers choose the keys: anything secret must be hashed first.
 */
export interface VerificationCacheOptions {
  ttlMs: number;
  maxEntries: number;
}

export class VerificationCache<T> {
  /** In the order answers arrived, which is (nearly) the order they expire in. */
  private readonly answers = new Map<string, { value: T; expiresAt: number }>();
  private readonly pending = new Map<string, { answer: Promise<T>; askedAt: number }>();

  constructor(private readonly options: VerificationCacheOptions) {
    if (!(options.maxEntries >= 1)) throw new RangeError(`VerificationCache expects maxEntries >= 1, but got ${options.maxEntries}`);
  }

  /** The cached answer for `key`, else the answer of `ask` (shared with any look-up of `key` already in flight). */
  get(key: string, ask: () => Promise<T>): Promise<T> {
    const askedAt = Date.now();
    const cached = this.answers.get(key);
    if (cached && cached.expiresAt > askedAt) return Promise.resolve(cached.value);
    const inFlight = this.pending.get(key);
    if (inFlight && inFlight.askedAt + this.options.ttlMs > askedAt) return inFlight.answer;
    const lookup = {
      askedAt,
      answer: ask()
        .then((value) => {
          this.store(key, value, askedAt + this.options.ttlMs);
          return value;
        })
        .finally(() => {
          if (this.pending.get(key) === lookup) this.pending.delete(key);
        }),
    };
    this.pending.set(key, lookup);
    return lookup.answer;
  }

  /** The keys answers are held under (never secrets: callers hash those). */
  keys(): string[] {
    return [...this.answers.keys()];
  }

  private store(key: string, value: T, expiresAt: number): void {
    const now = Date.now();
    // A slow, older question must not replace a newer answer.
    if ((this.answers.get(key)?.expiresAt ?? 0) >= expiresAt) return;
    this.answers.delete(key);
    // Expired answers gather at the front: drop them, then the oldest while full.
    for (const [oldest, entry] of this.answers) {
      if (entry.expiresAt > now && this.answers.size < this.options.maxEntries) break;
      this.answers.delete(oldest);
    }
    if (expiresAt > now) this.answers.set(key, { value, expiresAt });
  }
}
