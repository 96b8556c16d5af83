/**
 * Where rate-limit state lives: Redis (shared by every gateway process and
 * replica, one Lua script per decision) or this process's memory (the
 * fallback while Redis is unreachable, with the same rules per process).
 */
import type Redis from 'ioredis';
import { isCluster, runReplicated } from '../../lib/redis';
import { ACQUIRE_LEASE, CHARGE_WINDOWS, CORRECT_WINDOW, RENEW_LEASE } from './scripts';

export interface WindowCharge {
  key: string;
  limit: number;
  cost: number;
}

export interface WindowState {
  /** Units counted in the window before this request. */
  used: number;
  /** Milliseconds until this charge would fit: 0 when admitted, null when its cost is beyond the limit. */
  retryMs: number | null;
  /** Milliseconds until the oldest counted units leave the window. */
  resetMs: number;
}

export interface WindowVerdict {
  /** True when every charge fitted (and all were counted); false when none was counted. */
  admitted: boolean;
  /** The bucket (second) charged, for a later correction. */
  bucket: number;
  /** One per charge, in order. */
  windows: WindowState[];
}

export interface LeaseVerdict {
  admitted: boolean;
  /** Leases held (this one included when admitted). */
  held: number;
  /** Milliseconds until the earliest lease would expire if not renewed. */
  resetMs: number;
}

export interface LeaseRef {
  key: string;
  id: string;
}

export interface RateStore {
  charge(charges: readonly WindowCharge[]): Promise<WindowVerdict>;
  correct(key: string, bucket: number, delta: number): Promise<void>;
  acquire(key: string, limit: number, id: string, ttlMs: number): Promise<LeaseVerdict>;
  renew(leases: readonly LeaseRef[], ttlMs: number): Promise<void>;
  release(lease: LeaseRef): Promise<void>;
}

export const WINDOW_SECONDS = 60;

/** Most windows one decision charges: the caller's requests, its IP's requests, its tokens. */
const MAX_CHARGES = 3;

type Script<T> = (...args: (string | number)[]) => Promise<T>;
type Scripted = Redis &
  Record<`gwRateCharge${number}`, Script<number[]>> & {
    gwRateCorrect: Script<number>;
    gwRateAcquire: Script<number[]>;
    gwRateRenew: Script<number>;
  };

export class RedisRateStore implements RateStore {
  private readonly redis: Scripted;

  /** `now`, when given, replaces Redis's clock (tests); by default every gateway uses Redis TIME. */
  constructor(
    redis: Redis,
    private readonly now?: () => number,
  ) {
    // defineCommand sends EVALSHA, falling back to EVAL once per connection: the script text is not resent per decision.
    // One command per number of keys: ioredis-mock (the in-memory store) cannot take the key count per call.
    if (!('gwRateCorrect' in redis)) {
      for (let keys = 1; keys <= MAX_CHARGES; keys++) redis.defineCommand(`gwRateCharge${keys}`, { numberOfKeys: keys, lua: CHARGE_WINDOWS });
      redis.defineCommand('gwRateCorrect', { numberOfKeys: 1, lua: CORRECT_WINDOW });
      redis.defineCommand('gwRateAcquire', { numberOfKeys: 1, lua: ACQUIRE_LEASE });
      redis.defineCommand('gwRateRenew', { numberOfKeys: 1, lua: RENEW_LEASE });
    }
    this.redis = redis as Scripted;
  }

  /** 0 asks the script for Redis's own clock. */
  private time(): number {
    return this.now ? this.now() : 0;
  }

  /**
   * On one Redis every window is charged in one script. On a Cluster a
   * script cannot span slots, so the windows are charged per hash tag (the
   * caller's own windows share one, its IP's another), at once, and when one
   * group is refused the groups that were admitted are refunded. A crash
   * before the refund leaves units counted that were not used: the limits
   * then admit fewer, never more, than they allow.
   */
  async charge(charges: readonly WindowCharge[]): Promise<WindowVerdict> {
    if (charges.length < 1 || charges.length > MAX_CHARGES) throw new RangeError(`a decision charges 1 to ${MAX_CHARGES} windows, not ${charges.length}`);
    // One server: one script, whose verdict is the decision's as it stands (this runs on every request).
    if (!isCluster(this.redis)) return this.chargeTogether(charges);
    const groups = bySlot(charges);
    const verdicts = await Promise.all(groups.map((group) => this.chargeTogether(group)));
    const admitted = verdicts.every((v) => v.admitted);
    if (!admitted && groups.length > 1) {
      await Promise.all(groups.flatMap((group, g) => (verdicts[g].admitted ? group.filter((c) => c.cost > 0).map((c) => this.correct(c.key, verdicts[g].bucket, -c.cost)) : [])));
    }
    const byCharge = new Map(groups.flatMap((group, g) => group.map((c, i) => [c, verdicts[g].windows[i]] as const)));
    // The bucket of the last window (the tokens' when they are charged), for its correction.
    const last = groups.findIndex((group) => group.includes(charges[charges.length - 1]));
    return { admitted, bucket: verdicts[last].bucket, windows: charges.map((c) => byCharge.get(c)!) };
  }

  private async chargeTogether(charges: readonly WindowCharge[]): Promise<WindowVerdict> {
    const args: (string | number)[] = charges.map((c) => c.key);
    args.push(this.time(), WINDOW_SECONDS);
    for (const { limit, cost } of charges) args.push(limit, cost);
    const out = (await runReplicated(this.redis, `gwRateCharge${charges.length}`, args)) as number[];
    const windows = charges.map((_, i): WindowState => {
      const retry = out[3 + 3 * i];
      return { used: out[2 + 3 * i], retryMs: retry < 0 ? null : retry, resetMs: out[4 + 3 * i] };
    });
    return { admitted: out[0] === 1, bucket: out[1], windows };
  }

  async correct(key: string, bucket: number, delta: number): Promise<void> {
    await runReplicated(this.redis, 'gwRateCorrect', [key, bucket, delta, this.time(), WINDOW_SECONDS]);
  }

  async acquire(key: string, limit: number, id: string, ttlMs: number): Promise<LeaseVerdict> {
    const [admitted, held, resetMs] = (await runReplicated(this.redis, 'gwRateAcquire', [key, this.time(), limit, id, ttlMs])) as number[];
    return { admitted: admitted === 1, held, resetMs };
  }

  async renew(leases: readonly LeaseRef[], ttlMs: number): Promise<void> {
    // Sent together (ioredis writes them without waiting for each answer); each lease stands alone.
    await Promise.all(leases.map((lease) => this.redis.gwRateRenew(lease.key, this.time(), ttlMs, lease.id)));
  }

  async release(lease: LeaseRef): Promise<void> {
    await this.redis.zrem(lease.key, lease.id);
  }
}

function bySlot(charges: readonly WindowCharge[]): WindowCharge[][] {
  const groups = new Map<string, WindowCharge[]>();
  for (const charge of charges) {
    const tag = hashTag(charge.key);
    groups.set(tag, [...(groups.get(tag) ?? []), charge]);
  }
  return [...groups.values()];
}

/** A key's Redis Cluster hash tag (what decides its slot): the text in its first `{…}`, else the whole key. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** The same rules in this process's memory: the fallback while Redis is away, limits per process. */
export class LocalRateStore implements RateStore {
  private readonly windows = new Map<string, Map<number, number>>();
  private readonly leases = new Map<string, Map<string, number>>();
  private lastSweep = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async charge(charges: readonly WindowCharge[]): Promise<WindowVerdict> {
    const nowMs = this.now();
    this.sweep(nowMs);
    const nowS = Math.floor(nowMs / 1000);
    const oldest = nowS - WINDOW_SECONDS;
    let admitted = true;
    const windows = charges.map(({ key, limit, cost }) => {
      const buckets = this.windows.get(key) ?? new Map<number, number>();
      for (const b of buckets.keys()) if (b < oldest) buckets.delete(b);
      const live = [...buckets].filter(([, n]) => n > 0).sort(([a], [b]) => a - b);
      const used = live.reduce((sum, [, n]) => sum + n, 0);
      let retryMs: number | null = 0;
      if (used + cost > limit) {
        admitted = false;
        retryMs = null;
        let left = used;
        for (const [b, n] of cost <= limit ? live : []) {
          left -= n;
          if (left + cost <= limit) {
            retryMs = (b + WINDOW_SECONDS + 1) * 1000 - nowMs;
            break;
          }
        }
      }
      const first = live[0]?.[0] ?? nowS;
      return { used, retryMs, resetMs: (first + WINDOW_SECONDS + 1) * 1000 - nowMs };
    });
    if (admitted) {
      for (const { key, cost } of charges) {
        const buckets = this.windows.get(key) ?? new Map<number, number>();
        buckets.set(nowS, (buckets.get(nowS) ?? 0) + cost);
        this.windows.set(key, buckets);
      }
    }
    return { admitted, bucket: nowS, windows };
  }

  async correct(key: string, bucket: number, delta: number): Promise<void> {
    const nowS = Math.floor(this.now() / 1000);
    const buckets = this.windows.get(key) ?? new Map<number, number>();
    if (bucket >= nowS - WINDOW_SECONDS) buckets.set(bucket, Math.max(0, (buckets.get(bucket) ?? 0) + delta));
    else if (delta > 0) buckets.set(nowS, (buckets.get(nowS) ?? 0) + delta);
    this.windows.set(key, buckets);
  }

  async acquire(key: string, limit: number, id: string, ttlMs: number): Promise<LeaseVerdict> {
    const nowMs = this.now();
    const held = this.leases.get(key) ?? new Map<string, number>();
    for (const [lease, expiry] of held) if (expiry <= nowMs) held.delete(lease);
    if (held.size >= limit) return { admitted: false, held: held.size, resetMs: Math.min(...held.values()) - nowMs };
    held.set(id, nowMs + ttlMs);
    this.leases.set(key, held);
    return { admitted: true, held: held.size, resetMs: ttlMs };
  }

  async renew(leases: readonly LeaseRef[], ttlMs: number): Promise<void> {
    const expiry = this.now() + ttlMs;
    for (const { key, id } of leases) {
      const held = this.leases.get(key) ?? new Map<string, number>();
      held.set(id, expiry);
      this.leases.set(key, held);
    }
  }

  async release({ key, id }: LeaseRef): Promise<void> {
    const held = this.leases.get(key);
    held?.delete(id);
    if (held?.size === 0) this.leases.delete(key);
  }

  /** Forgets windows with nothing left in them, at most once a window, so memory follows the callers of the last minute. */
  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweep < WINDOW_SECONDS * 1000) return;
    this.lastSweep = nowMs;
    const oldest = Math.floor(nowMs / 1000) - WINDOW_SECONDS;
    for (const [key, buckets] of this.windows) if (![...buckets.keys()].some((b) => b >= oldest)) this.windows.delete(key);
  }
}
