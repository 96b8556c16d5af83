import { readFileSync } from 'node:fs';
import type Redis from 'ioredis';
import YAML from 'yaml';
import { redisUnavailable } from '../../lib/redis';
import { billingKeys } from './keys';

export interface Pricing {
  currency: string;
  inputCacheHit: number;
  inputCacheMiss: number;
  output: number;
}

const FIELDS = ['inputCacheHit', 'inputCacheMiss', 'output'] as const;

/**
 * The highest price accepted, in micros per 1M tokens (200 units). It keeps
 * settlement exact: tokens × price is computed in Lua doubles, and with at most
 * MAX_TOKENS_PER_EVENT (10^7) tokens per part the sum of three parts stays
 * below 2^53.
 */
export const MAX_PRICE_MICROS_PER_MILLION = 200_000_000;

/**
 * Per-model prices in Redis (`billing:{price}:<model>`), seeded from the prices file. Settlement's scripts read
 * them there; a price shown to a client comes from there too, or, while Redis is unavailable, from the last one
 * this process wrote or read: prices change only when a replica seeds them at start, so an answer that keeps the
 * price beats one that loses it.
 */
export class PriceStore {
  private readonly lastKnown = new Map<string, Pricing | null>();

  constructor(private readonly redis: Redis) {}

  /** Replaces the stored prices with the file's, in one transaction. Throws on a malformed file. */
  async seedFromFile(file: string): Promise<{ currency: string; models: number }> {
    const { currency, prices } = parsePrices(readFileSync(file, 'utf8'), file);
    const tx = this.redis.multi();
    for (const [model, pricing] of Object.entries(prices)) tx.hset(priceKey(model), pricing as unknown as Record<string, string | number>);
    await tx.exec();
    for (const [model, pricing] of Object.entries(prices)) this.lastKnown.set(model, pricing);
    return { currency, models: Object.keys(prices).length };
  }

  async forModel(model: string): Promise<Pricing | null> {
    let hash: Record<string, string>;
    try {
      hash = await this.redis.hgetall(priceKey(model));
    } catch (error) {
      if (redisUnavailable(error) && this.lastKnown.has(model)) return this.lastKnown.get(model) ?? null;
      throw error;
    }
    const pricing = hash.currency ? { currency: hash.currency, inputCacheHit: Number(hash.inputCacheHit), inputCacheMiss: Number(hash.inputCacheMiss), output: Number(hash.output) } : null;
    // Models come from the GPU tier's list, a few names: the map stays that small.
    this.lastKnown.set(model, pricing);
    return pricing;
  }
}

/** Validates the prices file: every price a non-negative integer number of micro-units. */
export function parsePrices(text: string, file: string): { currency: string; prices: Record<string, Pricing> } {
  const doc = YAML.parse(text) as { currency?: unknown; models?: Record<string, Record<string, unknown>> };
  if (typeof doc?.currency !== 'string' || typeof doc.models !== 'object' || doc.models === null) {
    throw new Error(`${file}: expected a "currency" string and a "models" map`);
  }
  const out: Record<string, Pricing> = {};
  for (const [model, entry] of Object.entries(doc.models)) {
    const pricing: Pricing = { currency: doc.currency, inputCacheHit: 0, inputCacheMiss: 0, output: 0 };
    for (const field of FIELDS) {
      const value = entry?.[field];
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_PRICE_MICROS_PER_MILLION) {
        throw new Error(`${file}: models.${model}.${field} expects an integer number of micro-units from 0 to ${MAX_PRICE_MICROS_PER_MILLION}, but got ${JSON.stringify(value)}`);
      }
      pricing[field] = value;
    }
    out[model] = pricing;
  }
  return { currency: doc.currency, prices: out };
}

const priceKey = billingKeys.price;
