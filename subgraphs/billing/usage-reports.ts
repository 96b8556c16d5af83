import type Redis from 'ioredis';
import { codedError, ErrorCode } from '../../lib/errors';
import { billingKeys as K, utcDay } from './keys';

/** What one model (or a sum over models) used and paid. */
export interface UsageTotals {
  requests: number;
  promptTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
  completionTokens: number;
  /** Micros actually charged (never more than the balance held). */
  amount: number;
}

export interface UsageBucket extends UsageTotals {
  /** A UTC day (YYYY-MM-DD) or a model id. */
  key: string;
}

export interface InvoiceLine extends UsageTotals {
  model: string;
}

export interface Invoice {
  month: string;
  currency: string;
  lines: InvoiceLine[];
  total: number;
}

export type UsageGrouping = 'DAY' | 'MODEL';

export const MAX_USAGE_RANGE_DAYS = 366;
export const MAX_INVOICES = 120;
const DAY_MS = 86_400_000;

/**
 * Reads what settlement booked (ledger-lua.ts SETTLE): per user, one hash
 * per UTC day and one per month, each `<model>|<part>` → integer. Usage and
 * invoices are sums of the same integers the balance was charged by, so they
 * agree with it exactly.
 */
export class UsageReports {
  constructor(
    private readonly redis: Redis,
    private readonly currency: string,
  ) {}

  /**
   * Usage over whole UTC days: from the day containing `from` to the day
   * containing the last instant before `to`. Days and models without usage are
   * left out; buckets come in day or model order.
   */
  async usage(userId: string, from: Date, to: Date, groupBy: UsageGrouping): Promise<UsageBucket[]> {
    const start = from.getTime();
    const end = to.getTime();
    if (!(start < end)) {
      throw codedError(ErrorCode.BadUserInput, `usage expects "from" before "to", but got from ${from.toISOString()} and to ${to.toISOString()}`, { field: 'from' });
    }
    const firstDay = Math.floor(start / DAY_MS);
    const lastDay = Math.floor((end - 1) / DAY_MS);
    if (lastDay - firstDay + 1 > MAX_USAGE_RANGE_DAYS) {
      throw codedError(
        ErrorCode.BadUserInput,
        `usage expects a range of at most ${MAX_USAGE_RANGE_DAYS} days, but got ${lastDay - firstDay + 1} (${from.toISOString()} to ${to.toISOString()}); ask for several ranges`,
        { field: 'to', limit: MAX_USAGE_RANGE_DAYS },
      );
    }
    const days: string[] = [];
    for (let d = firstDay; d <= lastDay; d++) days.push(utcDay(d * DAY_MS));
    const hashes = await this.readHashes(days.map((day) => K.usageDay(userId, day)));
    const buckets = new Map<string, UsageBucket>();
    days.forEach((day, i) => {
      for (const [model, totals] of byModel(hashes[i])) {
        const key = groupBy === 'DAY' ? day : model;
        const bucket = buckets.get(key) ?? { key, ...emptyTotals() };
        addTotals(bucket, totals);
        buckets.set(key, bucket);
      }
    });
    return [...buckets.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The `first` most recent months with usage, newest first; each invoice's lines add up to its total. */
  async invoices(userId: string, first: number): Promise<Invoice[]> {
    if (!Number.isInteger(first) || first < 1 || first > MAX_INVOICES) {
      throw codedError(ErrorCode.BadUserInput, `invoices expects "first" from 1 to ${MAX_INVOICES}, but got ${first}`, { field: 'first' });
    }
    const months = await this.redis.zrevrange(K.usageMonths(userId), 0, first - 1);
    const hashes = await this.readHashes(months.map((month) => K.usageMonth(userId, month)));
    return months.map((month, i) => {
      const lines = [...byModel(hashes[i])].map(([model, totals]) => ({ model, ...totals })).sort((a, b) => (a.model < b.model ? -1 : 1));
      return { month, currency: this.currency, lines, total: lines.reduce((sum, line) => sum + line.amount, 0) };
    });
  }

  private async readHashes(keys: string[]): Promise<Record<string, string>[]> {
    if (keys.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.hgetall(key);
    return ((await pipeline.exec()) ?? []).map(([error, value]) => {
      if (error) throw error;
      return value as Record<string, string>;
    });
  }
}

const PARTS: Record<string, keyof UsageTotals> = {
  requests: 'requests',
  hit: 'promptCacheHitTokens',
  miss: 'promptCacheMissTokens',
  out: 'completionTokens',
  amount: 'amount',
};

function emptyTotals(): UsageTotals {
  return { requests: 0, promptTokens: 0, promptCacheHitTokens: 0, promptCacheMissTokens: 0, completionTokens: 0, amount: 0 };
}

function addTotals(into: UsageTotals, from: UsageTotals): void {
  for (const key of Object.keys(emptyTotals()) as (keyof UsageTotals)[]) into[key] += from[key];
}

/** A day or month hash (`<model>|<part>` → integer) as totals per model. */
function byModel(hash: Record<string, string>): Map<string, UsageTotals> {
  const models = new Map<string, UsageTotals>();
  for (const [field, value] of Object.entries(hash)) {
    const bar = field.lastIndexOf('|');
    const part = PARTS[field.slice(bar + 1)];
    if (bar < 0 || !part) continue;
    const model = field.slice(0, bar);
    const totals = models.get(model) ?? emptyTotals();
    totals[part] += Number(value);
    models.set(model, totals);
  }
  for (const totals of models.values()) totals.promptTokens = totals.promptCacheHitTokens + totals.promptCacheMissTokens;
  return models;
}
