import { describe, expect, it } from 'vitest';
import { costMicros, formatMicros, formatPricePerMillion, parseMoney } from './money';

const chat = { currency: 'USD', inputCacheHit: 28_000, inputCacheMiss: 280_000, output: 420_000 };

describe('formatMicros', () => {
  it('shows at least two decimals and every significant micro', () => {
    expect(formatMicros(1_500_000)).toBe('$1.50');
    expect(formatMicros(18)).toBe('$0.000018');
    expect(formatMicros(0)).toBe('$0.00');
    expect(formatMicros(1_234_567_890)).toBe('$1,234.56789');
  });

  it('puts the sign before the symbol and names currencies it has no symbol for', () => {
    expect(formatMicros(-2_000_000)).toBe('−$2.00');
    expect(formatMicros(1_000_000_000, 'CHF')).toBe('1,000.00 CHF');
  });

  it('refuses fractions of a micro instead of rounding them silently', () => {
    expect(() => formatMicros(1.5)).toThrow('formatMicros expects a whole number of micros, but got 1.5');
  });

  it('formats prices per million tokens', () => {
    expect(formatPricePerMillion(280_000)).toBe('$0.28 / 1M tokens');
  });
});

describe('costMicros', () => {
  it('charges each kind of token at its price and rounds up to a whole micro, as billing settles', () => {
    // 3 × 28,000 + 10 × 280,000 + 7 × 420,000 = 5,824,000 per-1M micros → 5.824 → 6 micros.
    expect(costMicros({ promptCacheHitTokens: 3, promptCacheMissTokens: 10, completionTokens: 7 }, chat)).toBe(6);
  });

  it('is exact when the product is a whole number of micros and zero for no tokens', () => {
    expect(costMicros({ promptCacheHitTokens: 0, promptCacheMissTokens: 1_000_000, completionTokens: 0 }, chat)).toBe(280_000);
    expect(costMicros({ promptCacheHitTokens: 0, promptCacheMissTokens: 0, completionTokens: 0 }, chat)).toBe(0);
  });
});

describe('parseMoney', () => {
  it('reads amounts as people type them, exactly, and an empty field as no amount', () => {
    expect(parseMoney('1.5')).toBe(1_500_000);
    expect(parseMoney(' $1,000 ')).toBe(1_000_000_000);
    expect(parseMoney('0.000001')).toBe(1);
    expect(parseMoney('')).toBeNull();
  });

  it('says what was wrong with anything else', () => {
    expect(() => parseMoney('ten')).toThrow('“ten” is not an amount: expected a number such as 5 or 2.50');
    expect(() => parseMoney('-1')).toThrow('“-1” is not an amount');
    expect(() => parseMoney('0.0000001')).toThrow('“0.0000001” is not an amount');
  });
});
