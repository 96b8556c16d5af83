/**
 * Money in the graph is an integer number of micro-units (1 USD = 1,000,000
 * micros). Every amount the app shows goes through here, so it is formatted
 * one way and never passes through a float.
 */
export interface Pricing {
  currency: string;
  /** Micros per 1M prompt tokens found in the context cache. */
  inputCacheHit: number;
  /** Micros per 1M prompt tokens not found in it. */
  inputCacheMiss: number;
  /** Micros per 1M generated tokens. */
  output: number;
}

export interface BilledTokens {
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
  completionTokens: number;
}

const MICROS_PER_UNIT = 1_000_000;
const SYMBOLS: Record<string, string> = { USD: '$', EUR: '€', GBP: '£' };

/**
 * What billing charges for `usage` at `pricing`: the per-1M prices times the
 * tokens, rounded up to a whole micro, as billing's settle script computes it,
 * so the cost shown under an answer is what leaves the balance.
 */
export function costMicros(usage: BilledTokens, pricing: Pricing): number {
  const perMillion = usage.promptCacheHitTokens * pricing.inputCacheHit + usage.promptCacheMissTokens * pricing.inputCacheMiss + usage.completionTokens * pricing.output;
  return Math.ceil(perMillion / MICROS_PER_UNIT);
}

/**
 * `micros` as money: "$1.50", "$0.000018", "−$2.00", "1,234.00 CHF". At least
 * two decimals, and as many more (up to six) as the amount has, so a cost of a
 * few tokens never shows as $0.00.
 */
export function formatMicros(micros: number, currency = 'USD'): string {
  if (!Number.isSafeInteger(micros)) throw new RangeError(`formatMicros expects a whole number of micros, but got ${micros}`);
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / MICROS_PER_UNIT).toLocaleString('en-US');
  const fraction = String(abs % MICROS_PER_UNIT)
    .padStart(6, '0')
    .replace(/0+$/, '')
    .padEnd(2, '0');
  const sign = micros < 0 ? '−' : '';
  const symbol = SYMBOLS[currency];
  return symbol ? `${sign}${symbol}${whole}.${fraction}` : `${sign}${whole}.${fraction} ${currency}`;
}

/** A price per 1M tokens, as DeepSeek shows its own: "$0.28 / 1M tokens". */
export function formatPricePerMillion(micros: number, currency = 'USD'): string {
  return `${formatMicros(micros, currency)} / 1M tokens`;
}

/** A whole number of tokens or requests with thousands separators. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * An amount a person typed ("1.5", "$0.25", "1,000") as micros, or null for
 * an empty field. Throws a RangeError that says what was wrong for anything
 * else, including more than six decimals (a fraction of a micro).
 */
export function parseMoney(text: string): number | null {
  const cleaned = text.trim().replace(/^\$/, '').replace(/,/g, '');
  if (cleaned === '') return null;
  const match = /^(\d+)(?:\.(\d{0,6}))?$/.exec(cleaned);
  if (!match) throw new RangeError(`“${text}” is not an amount: expected a number such as 5 or 2.50`);
  const micros = Number(match[1]) * MICROS_PER_UNIT + Number((match[2] ?? '').padEnd(6, '0'));
  if (!Number.isSafeInteger(micros)) throw new RangeError(`“${text}” is too large an amount`);
  return micros;
}
