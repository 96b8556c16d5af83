import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { UsageEvent } from '../../../lib/usage-events';
import { billingKeys } from '../keys';
import type { Pricing } from '../price-store';

/** A model with its own random id and the given prices (micros per 1M tokens). */
export async function pricedModel(redis: Redis, prices: Omit<Pricing, 'currency'>): Promise<string> {
  const model = `m-${randomUUID().slice(0, 8)}`;
  await redis.hset(billingKeys.price(model), { currency: 'USD', ...prices });
  return model;
}

export const CHAT_PRICES = { inputCacheHit: 28_000, inputCacheMiss: 280_000, output: 420_000 };

/** The exact charge, computed independently of the Lua scripts with BigInt. */
export function expectedCharge(prices: Omit<Pricing, 'currency'>, hit: number, miss: number, out: number): number {
  const total = BigInt(hit) * BigInt(prices.inputCacheHit) + BigInt(miss) * BigInt(prices.inputCacheMiss) + BigInt(out) * BigInt(prices.output);
  return Number((total + 999_999n) / 1_000_000n);
}

export function usageEvent(overrides: Partial<UsageEvent> & Pick<UsageEvent, 'userId' | 'model'>): UsageEvent {
  const hit = overrides.promptCacheHitTokens ?? 0;
  const miss = overrides.promptCacheMissTokens ?? 100;
  return {
    eventId: randomUUID(),
    reservationId: null,
    keyId: null,
    modelVersion: '1',
    completionTokens: 50,
    finishReason: 'STOP',
    endedAt: Date.now(),
    ...overrides,
    promptCacheHitTokens: hit,
    promptCacheMissTokens: miss,
    promptTokens: hit + miss,
  };
}

export const newUser = () => `u-${randomUUID()}`;

/** Resolves once `check` returns true, polling; throws after `timeoutMs` with `what`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
