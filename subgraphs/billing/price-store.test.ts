import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { startRedisServer } from '../../scripts/redis-server';
import { parsePrices, PriceStore } from './price-store';

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

describe('PriceStore while Redis is away', () => {
  it('answers the price it last wrote or read, and still fails for a model it never knew', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-prices-'));
    const server = await startRedisServer(dir);
    const redis = connectRedis(server.url, createLogger({ service: 'price-store-test' }));
    const store = new PriceStore(redis);
    try {
      const file = path.join(__dirname, 'prices.yaml');
      const { prices } = parsePrices(readFileSync(file, 'utf8'), file);
      const [model, pricing] = Object.entries(prices)[0];
      await store.seedFromFile(file);
      expect(await store.forModel(model)).toEqual(pricing);
      expect(await store.forModel('no-such-model')).toBeNull();
      await server.stop();
      expect(await store.forModel(model)).toEqual(pricing);
      expect(await store.forModel('no-such-model')).toBeNull();
      await expect(store.forModel('never-asked')).rejects.toThrow(/^(Reached the max retries|Connection is closed)/);
    } finally {
      redis.disconnect();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
