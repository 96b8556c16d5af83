/**
 * A short-lived cache of answers from the auth service (API-key verifications,
 * session statuses), so a busy caller does not cost one auth round trip per
 * request.
 *
 * - An answer is kept for `ttlMs` counted from when the question was *sent*,
 *   not from when the answer arrived: auth's answer describes its state at some
 *   moment after sending, so `ttlMs` is a true bound on how long a revoked key
 *   or a logged-out session keeps working at this gateway while auth can be asked.
 * - Negative answers ("not valid", "revoked") are cached too: a client retrying
 *   a bad key in a loop must not turn into a loop against auth.
 * - Concurrent look-ups of one key share one question, as long as that
 *   question is younger than `ttlMs` (a slow auth must not stretch the bound).
 * - Failures (auth unreachable) are never cached: the next request asks again.
 * - Stale if error (`staleIfError`): when asking fails with an error
 *   `staleIfError.when` accepts (auth cannot be asked at all), the last answer
 *   for the key is used until `staleIfError.ms` past its expiry, positive or
 *   negative alike: it is what auth last said, so nothing that was refused is
 *   let in, and a key never answered still gets the error. A look-up that
 *   has such an answer to fall back on waits at most `staleIfError.patienceMs`
 *   for the fresh one (a hung source costs each caller that, not its whole
 *   timeout): past it the earlier answer is used, and the question goes on,
 *   its answer refreshing the cache. Each such answer is reported to
 *   `staleIfError.onServe`.
 * - At most `maxEntries` answers are kept; past that the oldest go first (all
 *   answers are kept equally long, so the oldest is also the nearest to being
 *   dropped). Callers choose the keys: anything secret must be hashed first.
 */
export interface VerificationCacheOptions<T> {
  ttlMs: number;
  maxEntries: number;
  staleIfError?: StaleIfError;
  /** Told of each answer `ask` gave, with when its question was sent (to pass it to other processes, which `learn` it). */
  onAnswer?: (key: string, value: T, askedAt: number) => void;
}

export interface StaleIfError {
  /** How long past its expiry an answer may still be used; 0 never uses an expired answer. */
  ms: number;
  /** Whether the failure of a question means the source cannot be asked right now (only then is an earlier answer used). */
  when: (error: unknown) => boolean;
  /** How long a look-up that could fall back on an earlier answer waits for the fresh one. @default no limit */
  patienceMs?: number;
  /** Called for each expired answer used, with the error it stood in for (an OverdueAnswer past `patienceMs`) and how long ago its question was sent. */
  onServe?: (error: unknown, ageMs: number) => void;
}

/** What an earlier answer stood in for when the fresh one took longer than `staleIfError.patienceMs`. */
export class OverdueAnswer extends Error {
  override name = 'OverdueAnswer';
}

export class VerificationCache<T> {
  /** In the order answers arrived, which is (nearly) the order they are dropped in. */
  private readonly answers = new Map<string, { value: T; askedAt: number }>();
  private readonly pending = new Map<string, { answer: Promise<T>; askedAt: number }>();
  /** How long an answer is kept past its expiry, for staleIfError. */
  private readonly staleMs: number;

  constructor(private readonly options: VerificationCacheOptions<T>) {
    if (!(options.maxEntries >= 1)) throw new RangeError(`VerificationCache expects maxEntries >= 1, but got ${options.maxEntries}`);
    this.staleMs = options.staleIfError?.ms ?? 0;
    if (!(this.staleMs >= 0)) throw new RangeError(`VerificationCache expects staleIfError.ms >= 0, but got ${this.staleMs}`);
  }

  /** The cached answer for `key`, else the answer of `ask` (shared with any look-up of `key` already in flight), else, during an outage, the last answer within the staleness bound. */
  get(key: string, ask: () => Promise<T>): Promise<T> {
    const now = Date.now();
    const cached = this.answers.get(key);
    if (cached && cached.askedAt + this.options.ttlMs > now) return Promise.resolve(cached.value);
    const { answer, askedAt } = this.ask(key, ask, now);
    if (this.staleMs === 0) return answer;
    const patienceMs = this.options.staleIfError?.patienceMs;
    if (patienceMs === undefined || !cached || now >= this.keptUntil(cached.askedAt)) return answer.catch((error: unknown) => this.staleAnswer(key, error));
    return new Promise<T>((resolve, reject) => {
      let stoodIn = false;
      // Counted from when the question was sent: joining a question already overdue costs no further wait.
      const overdue = setTimeout(
        () => {
          const standIn = this.standIn(key, new OverdueAnswer(`no answer within ${patienceMs} ms`));
          stoodIn = standIn !== undefined;
          if (standIn) resolve(standIn.value);
        },
        Math.max(0, askedAt + patienceMs - now),
      );
      answer
        .finally(() => clearTimeout(overdue))
        .then(resolve, (error: unknown) => {
          // Once the earlier answer has stood in, the question's failure is no news to this caller.
          if (stoodIn) return;
          try {
            resolve(this.staleAnswer(key, error));
          } catch (failure) {
            reject(failure);
          }
        });
    });
  }

  /** An answer another process got for `key` to a question sent at `askedAt`: held as if this cache had asked it. */
  learn(key: string, value: T, askedAt: number): void {
    this.store(key, value, askedAt);
  }

  /** The keys answers are held under (never secrets: callers hash those). */
  keys(): string[] {
    return [...this.answers.keys()];
  }

  /** The question for `key`: the one in flight, or a new one sent now. */
  private ask(key: string, ask: () => Promise<T>, askedAt: number): { answer: Promise<T>; askedAt: number } {
    const inFlight = this.pending.get(key);
    if (inFlight && inFlight.askedAt + this.options.ttlMs > askedAt) return inFlight;
    const lookup = {
      askedAt,
      answer: ask()
        .then((value) => {
          this.store(key, value, askedAt);
          this.options.onAnswer?.(key, value, askedAt);
          return value;
        })
        .finally(() => {
          if (this.pending.get(key) === lookup) this.pending.delete(key);
        }),
    };
    this.pending.set(key, lookup);
    return lookup;
  }

  /** The last answer for `key` in place of `error`, if the error is an outage and the answer is within the bound; else the error. */
  private staleAnswer(key: string, error: unknown): T {
    const standIn = this.options.staleIfError?.when(error) ? this.standIn(key, error) : undefined;
    if (!standIn) throw error;
    return standIn.value;
  }

  /** The answer for `key` that may still stand in for `error` (reported to onServe), if there is one. Boxed: an answer may be `false`. */
  private standIn(key: string, error: unknown): { value: T } | undefined {
    const entry = this.answers.get(key);
    const now = Date.now();
    if (!entry || now >= this.keptUntil(entry.askedAt)) return undefined;
    this.options.staleIfError?.onServe?.(error, now - entry.askedAt);
    return { value: entry.value };
  }

  private keptUntil(askedAt: number): number {
    return askedAt + this.options.ttlMs + this.staleMs;
  }

  private store(key: string, value: T, askedAt: number): void {
    const now = Date.now();
    // A slow, older question must not replace a newer answer.
    if ((this.answers.get(key)?.askedAt ?? -Infinity) >= askedAt) return;
    this.answers.delete(key);
    // Answers past keeping gather at the front: drop them, then the oldest while full.
    for (const [oldest, entry] of this.answers) {
      if (this.keptUntil(entry.askedAt) > now && this.answers.size < this.options.maxEntries) break;
      this.answers.delete(oldest);
    }
    if (this.keptUntil(askedAt) > now) this.answers.set(key, { value, askedAt });
  }
}
