/**
 * Rate-limit decisions for the gateway (issue 7): requests and completion
 * tokens per minute, and live streams at once, for each caller — an API key,
 * else a user, else (anonymous) an IP address — plus, when a plan says so,
 * requests per minute from one IP whoever the caller. State is in Redis
 * under `gw:rl:`, shared by every gateway process; each decision is one Lua
 * script (`scripts.ts`), so concurrent gateways cannot over-admit.
 *
 * When Redis cannot answer (not connected, or slower than the timeout), the
 * limiter fails open — the same limits in this process's memory, so per
 * process, with a warning — or closed — SERVICE_UNAVAILABLE — as configured.
 */
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { GraphQLError } from 'graphql';
import { codedError, ErrorCode } from '../../lib/errors';
import type { IdentityClaims } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import type { RatePlan, RatePlans } from './plans';
import { LocalRateStore, RedisRateStore, WINDOW_SECONDS, type LeaseRef, type RateStore, type WindowCharge } from './stores';

export type OnRedisError = 'open' | 'closed';

export interface RateLimiterOptions {
  /** Each caller's limits (GATEWAY_RATE_LIMITS, see plans.ts; `streams` defaults to GATEWAY_SUBSCRIPTIONS_PER_USER). @default nothing limited but 32 streams per user */
  plans: RatePlans;
  /** While Redis is away: limit in each process (`open`), or refuse with SERVICE_UNAVAILABLE (`closed`) (GATEWAY_RATE_LIMIT_ON_REDIS_ERROR). @default open */
  onRedisError: OnRedisError;
  /** How long Redis may take to decide, in ms, before the limiter acts as if it were unreachable (GATEWAY_RATE_LIMIT_REDIS_TIMEOUT_MS). @default 1000 */
  redisTimeoutMs: number;
  /** A live stream's lease in Redis, in ms, renewed at a third of it: how long a dead gateway's streams keep counting (GATEWAY_RATE_LIMIT_STREAM_LEASE_MS). @default 30000 */
  leaseMs: number;
}

/** Which counter a quota is: requests, tokens or streams of the caller, or requests from its IP. */
export type QuotaKind = 'rpm' | 'tpm' | 'streams' | 'ip-rpm';
/** Whose counter it is. */
export type QuotaScope = 'key' | 'user' | 'ip';

/** One limit as the caller sees it, for the RateLimit headers and a refusal's extensions. */
export interface Quota {
  kind: QuotaKind;
  scope: QuotaScope;
  limit: number;
  remaining: number;
  /** Seconds until some of the quota comes back. */
  resetSeconds: number;
}

/** A token charge, kept to be corrected once the real usage is known. */
export interface TokenCharge {
  readonly tokens: number;
  correct(realTokens: number): Promise<void>;
}

export type Admission = { admitted: true; quota?: Quota; tokens?: TokenCharge } | { admitted: false; error: GraphQLError; quota?: Quota; retryAfter?: number };

export interface StreamLease {
  release(): void;
}

export type StreamAdmission = { admitted: true; lease: StreamLease } | { admitted: false; error: GraphQLError; retryAfter?: number };

const UNITS: Record<QuotaKind, string> = { rpm: 'requests per minute', 'ip-rpm': 'requests per minute', tpm: 'tokens per minute', streams: 'live streams' };
const WHOSE: Record<QuotaScope, string> = { key: 'this API key', user: 'this user', ip: 'this IP address' };
const NO_LEASE: StreamLease = { release: () => {} };
class Unavailable {}
const LOST: ReadonlySet<string> = new Set(['reconnecting', 'close', 'end']);

interface Counter {
  kind: QuotaKind;
  scope: QuotaScope;
  charge: WindowCharge;
}

export class RateLimiter {
  private readonly redisStore: RedisRateStore;
  private readonly local: LocalRateStore;
  private readonly live = new Map<LeaseRef, RateStore>();
  private renewal: NodeJS.Timeout | undefined;
  private outage = false;
  /** When Redis last answered one of this limiter's scripts (performance.now()). */
  private lastAnswerAt = -Infinity;

  constructor(
    private readonly redis: Redis,
    private readonly options: RateLimiterOptions,
    private readonly log: Logger,
    private readonly hooks: {
      /** Replaces the clocks (Redis TIME and Date.now) in tests. */
      now?: () => number;
      /** Told of every RATE_LIMITED refusal (metrics). */
      onRefusal?: (scope: QuotaScope, kind: QuotaKind) => void;
    } = {},
  ) {
    this.redisStore = new RedisRateStore(redis, hooks.now);
    this.local = new LocalRateStore(hooks.now);
  }

  /** Counts one operation (and `tokens` completion tokens) against the caller's limits, or refuses it having counted nothing. */
  async admit(claims: IdentityClaims, tokens = 0): Promise<Admission> {
    const plan = this.options.plans.planFor(claims);
    const counters = this.counters(plan, claims, tokens);
    if (counters.length === 0) return { admitted: true };
    const result = await this.withStore((store) => store.charge(counters.map((c) => c.charge)));
    if (result instanceof Unavailable) return this.unavailable();
    const { verdict, store } = result;
    const quotas = counters.map(({ kind, scope, charge }, i): Quota => {
      const { used, resetMs } = verdict.windows[i];
      const remaining = Math.max(0, charge.limit - used - (verdict.admitted ? charge.cost : 0));
      return { kind, scope, limit: charge.limit, remaining, resetSeconds: Math.max(1, Math.ceil(resetMs / 1000)) };
    });
    if (verdict.admitted) {
      const tpm = counters.findIndex((c) => c.kind === 'tpm');
      const tokenCharge = tpm < 0 ? undefined : this.tokenCharge(store, counters[tpm].charge.key, verdict.bucket, tokens);
      return { admitted: true, quota: tightest(quotas), tokens: tokenCharge };
    }
    // The refusal names the limit that keeps the request out longest; one beyond reach (cost > limit, retry null) outranks all.
    const refused = counters.map((_, i) => i).filter((i) => verdict.windows[i].used + counters[i].charge.cost > counters[i].charge.limit);
    const worst = refused.reduce((a, b) => {
      const [ra, rb] = [verdict.windows[a].retryMs, verdict.windows[b].retryMs];
      return ra === null ? a : rb === null || rb > ra ? b : a;
    });
    const counter = counters[worst];
    this.hooks.onRefusal?.(counter.scope, counter.kind);
    const { retryMs } = verdict.windows[worst];
    const retryAfter = retryMs === null ? undefined : Math.max(1, Math.ceil(retryMs / 1000));
    return { admitted: false, error: refusal(plan, counter, quotas[worst], retryAfter, verdict.windows[worst].used), quota: quotas[worst], retryAfter };
  }

  /** Takes one of the caller's live-stream slots, shared by every gateway process; `release()` gives it back. */
  async acquireStream(claims: IdentityClaims): Promise<StreamAdmission> {
    const plan = this.options.plans.planFor(claims);
    const holder = claims.sub ? { scope: 'user' as const, id: claims.sub } : { scope: 'ip' as const, id: claims.ip ?? 'unknown' };
    if (plan.streams === null) return { admitted: true, lease: NO_LEASE };
    const limit = plan.streams;
    const ref: LeaseRef = { key: `gw:rl:{${holder.scope}:${holder.id}}:streams`, id: randomUUID() };
    const result = await this.withStore((store) => store.acquire(ref.key, limit, ref.id, this.options.leaseMs));
    if (result instanceof Unavailable) return this.unavailable();
    const { verdict, store } = result;
    if (!verdict.admitted) {
      this.hooks.onRefusal?.(holder.scope, 'streams');
      const retryAfter = Math.max(1, Math.ceil(verdict.resetMs / 1000));
      const error = codedError(
        ErrorCode.RateLimited,
        `too many live subscriptions for ${WHOSE[holder.scope]}: the limit is ${limit} across all gateways (plan "${plan.name}"), with ${verdict.held} live; end one before starting another`,
        { limit, scope: holder.scope, kind: 'streams', plan: plan.name, retryAfter },
      );
      return { admitted: false, error, retryAfter };
    }
    this.track(ref, store);
    let released = false;
    return {
      admitted: true,
      lease: {
        release: () => {
          if (released) return;
          released = true;
          this.live.delete(ref);
          if (this.live.size === 0) this.stopRenewal();
          store.release(ref).catch((error: unknown) => this.log.warn('a stream lease could not be released; it expires by itself', { error, leaseMs: this.options.leaseMs }));
        },
      },
    };
  }

  /** Stops renewing leases (the process is stopping: its streams end with it). */
  close(): void {
    this.stopRenewal();
    this.live.clear();
  }

  private counters(plan: RatePlan, claims: IdentityClaims, tokens: number): Counter[] {
    const subject = claims.keyId ? { scope: 'key' as const, id: claims.keyId } : claims.sub ? { scope: 'user' as const, id: claims.sub } : { scope: 'ip' as const, id: claims.ip ?? 'unknown' };
    const counters: Counter[] = [];
    // The hash tag is the counted one: on a Redis Cluster a caller's windows share a slot (charged in one script), its IP's are in another.
    const key = (kind: QuotaKind, scope: QuotaScope, id: string) => `gw:rl:{${scope}:${id}}:${kind}`;
    if (plan.rpm !== null) counters.push({ kind: 'rpm', scope: subject.scope, charge: { key: key('rpm', subject.scope, subject.id), limit: plan.rpm, cost: 1 } });
    if (plan.ipRpm !== null && claims.ip) counters.push({ kind: 'ip-rpm', scope: 'ip', charge: { key: key('ip-rpm', 'ip', claims.ip), limit: plan.ipRpm, cost: 1 } });
    if (plan.tpm !== null && tokens > 0) counters.push({ kind: 'tpm', scope: subject.scope, charge: { key: key('tpm', subject.scope, subject.id), limit: plan.tpm, cost: tokens } });
    return counters;
  }

  private tokenCharge(store: RateStore, key: string, bucket: number, tokens: number): TokenCharge {
    let corrected = false;
    return {
      tokens,
      correct: async (real: number) => {
        if (corrected || real === tokens) return;
        corrected = true;
        try {
          await store.correct(key, bucket, real - tokens);
        } catch (error) {
          this.log.warn('a token charge could not be corrected with the real usage', { error, charged: tokens, real });
        }
      },
    };
  }

  /** Runs on Redis, or — when it cannot answer in time — on this process's memory (open) or not at all (closed). */
  private async withStore<T>(run: (store: RateStore) => Promise<T>): Promise<{ verdict: T; store: RateStore } | Unavailable> {
    // A client that lost its connection would only queue the command until the timeout: decide without it at once.
    // (A client still making its first connection is given the timeout; ioredis-mock has no status.)
    const status = (this.redis as { status?: string }).status;
    if (!status || !LOST.has(status)) {
      try {
        const verdict = await this.answer(run(this.redisStore));
        if (this.outage) {
          this.outage = false;
          this.log.info('rate limits are shared through Redis again');
        }
        return { verdict, store: this.redisStore };
      } catch (error) {
        this.noteOutage(error);
      }
    } else {
      this.noteOutage(new Error(`redis connection is ${status}`));
    }
    if (this.options.onRedisError === 'closed') return new Unavailable();
    return { verdict: await run(this.local), store: this.local };
  }

  /**
   * Redis's answer, or an error once Redis has been silent for the timeout.
   * Under load an answer can be late because this process is busy, not
   * because Redis is away: while other answers keep arriving, it waits on.
   * (Falling back then would let every process admit the limit again.)
   */
  private async answer<T>(pending: Promise<T>): Promise<T> {
    const ms = this.options.redisTimeoutMs;
    const settled = pending.then((value) => {
      this.lastAnswerAt = performance.now();
      return { value };
    });
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([settled, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
      clearTimeout(timer);
      if (outcome) return outcome.value;
      // Let answers already received be read first: a timer can fire before the socket is polled.
      await new Promise((resolve) => setImmediate(resolve));
      const late = await Promise.race([settled, undefined]);
      if (late) return late.value;
      if (performance.now() - this.lastAnswerAt > ms) throw new Error(`redis did not answer within ${ms} ms`);
    }
  }

  private noteOutage(error: unknown): void {
    if (this.outage) return;
    this.outage = true;
    this.log.warn(
      this.options.onRedisError === 'open'
        ? 'redis cannot decide rate limits: limiting in this process only until it is back (GATEWAY_RATE_LIMIT_ON_REDIS_ERROR=open)'
        : 'redis cannot decide rate limits: refusing limited operations until it is back (GATEWAY_RATE_LIMIT_ON_REDIS_ERROR=closed)',
      { error },
    );
  }

  private unavailable(): { admitted: false; error: GraphQLError } {
    return {
      admitted: false,
      error: codedError(
        ErrorCode.ServiceUnavailable,
        'rate limits cannot be checked right now (their store, Redis, is unreachable), and the gateway is configured to refuse rather than run unchecked; retry shortly',
      ),
    };
  }

  /** Keeps a live stream's lease from expiring, in the store that granted it, for as long as the stream lives. */
  private track(ref: LeaseRef, store: RateStore): void {
    this.live.set(ref, store);
    if (this.renewal) return;
    this.renewal = setInterval(
      () => {
        for (const owner of [this.redisStore, this.local]) {
          const leases = [...this.live].filter(([, s]) => s === owner).map(([lease]) => lease);
          if (leases.length === 0) continue;
          owner
            .renew(leases, this.options.leaseMs)
            .catch((error: unknown) => this.log.warn('stream leases could not be renewed; they are put back at the next renewal Redis answers', { error, leases: leases.length }));
        }
      },
      Math.max(100, Math.floor(this.options.leaseMs / 3)),
    );
    this.renewal.unref();
  }

  private stopRenewal(): void {
    if (this.renewal) clearInterval(this.renewal);
    this.renewal = undefined;
  }
}

/** The quota closest to running out, as a share of its limit: the one the RateLimit headers describe. */
function tightest(quotas: Quota[]): Quota {
  return quotas.reduce((a, b) => (b.remaining / b.limit < a.remaining / a.limit ? b : a));
}

function refusal(plan: RatePlan, counter: Counter, quota: Quota, retryAfter: number | undefined, used: number): GraphQLError {
  const { kind, scope, charge } = counter;
  const extensions = { limit: charge.limit, scope, kind, plan: plan.name, retryAfter: retryAfter ?? null };
  const whose = WHOSE[scope];
  if (retryAfter === undefined) {
    return codedError(
      ErrorCode.RateLimited,
      `this request counts ${charge.cost} tokens (its maxTokens), more than the limit of ${charge.limit} ${UNITS[kind]} for ${whose} (plan "${plan.name}"): it can never be admitted; ask for fewer maxTokens`,
      extensions,
    );
  }
  const what =
    kind === 'tpm'
      ? `too many tokens for ${whose}: this request counts ${charge.cost} (its maxTokens) and ${used} of`
      : kind === 'ip-rpm'
        ? `too many requests from ${whose}: all ${used} of`
        : `too many requests for ${whose}: all ${used} of`;
  return codedError(ErrorCode.RateLimited, `${what} the limit of ${charge.limit} ${UNITS[kind]} are used (plan "${plan.name}", a sliding ${WINDOW_SECONDS} s window); retry in ${retryAfter} s`, {
    ...extensions,
    remaining: quota.remaining,
  });
}
