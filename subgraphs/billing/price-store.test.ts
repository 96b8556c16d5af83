import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parsePrices } from './price-store';

describe('prices file', () => {
  it('parses the shipped prices as integer micro-units', () => {
    const file = path.join(__dirname, 'prices.yaml');
    const { currency, prices } = parsePrices(readFileSync(file, 'utf8'), file);
    expect(currency).toBe('USD');
    for (const pricing of Object.values(prices)) {
      for (const value of [pricing.inputCacheHit, pricing.inputCacheMiss, pricing.output]) expect(Number.isSafeInteger(value)).toBe(true);
    }
  });

  it('refuses a fractional price, naming the model, the field and the value', () => {
    expect(() => parsePrices('currency: USD\nmodels:\n  m:\n    inputCacheHit: 1\n    inputCacheMiss: 2.5\n    output: 3\n', 'p.yaml')).toThrow(
      'p.yaml: models.m.inputCacheMiss expects an integer number of micro-units from 0 to 200000000, but got 2.5',
    );
  });

  it('refuses a price so high that settlement could not stay exact', () => {
    expect(() => parsePrices('currency: USD\nmodels:\n  m:\n    inputCacheHit: 1\n    inputCacheMiss: 2\n    output: 200000001\n', 'p.yaml')).toThrow(
      'p.yaml: models.m.output expects an integer number of micro-units from 0 to 200000000, but got 200000001',
    );
  });
});
