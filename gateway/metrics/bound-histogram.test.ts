import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { BoundHistogram } from './bound-histogram';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: Array<[number, string, string]> = [
  [0.0005, 'Me', 'ok'],
  [0.001, 'Me', 'ok'],
  [0.05, 'Me', 'RATE_LIMITED'],
  [3, 'Models', 'ok'],
  [0.02, 'Me', 'ok'],
  [0, 'weird "name"\\', 'ok'],
];

/** The same observations in prom-client's Histogram and in a BoundHistogram, each in a registry of its own. */
function both() {
  const stock = new Registry();
  const histogram = new Histogram({ name: 'h_seconds', help: 'help', labelNames: ['operation', 'outcome'] as const, buckets: BUCKETS, registers: [stock] });
  const bound = new Registry();
  const ours = new BoundHistogram('h_seconds', 'help', ['operation', 'outcome'], BUCKETS, bound);
  for (const [value, operation, outcome] of OBSERVATIONS) {
    histogram.observe({ operation, outcome }, value);
    ours.observe(value, operation, outcome);
  }
  return { stock, bound, ours };
}

it("exposes the same text, JSON and cluster aggregation as prom-client's Histogram for the same observations", async () => {
  const { stock, bound } = both();
  expect(await bound.metrics()).toBe(await stock.metrics());
  expect(await bound.getMetricsAsJSON()).toEqual(await stock.getMetricsAsJSON());
  const aggregate = async (registry: Registry) => AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), await registry.getMetricsAsJSON()]).metrics();
  expect(await aggregate(bound)).toBe(await aggregate(stock));
});

it('forgets every series on reset, as the registry resets it', async () => {
  const { stock, bound, ours } = both();
  stock.resetMetrics();
  bound.resetMetrics();
  expect(await bound.metrics()).toBe(await stock.metrics());
  ours.observe(0.5, 'Me', 'ok');
  expect((await bound.getMetricsAsJSON())[0].values).toHaveLength(BUCKETS.length + 3);
});

it('refuses a value that is not a finite number, and label values that do not match its label names', () => {
  const ours = new BoundHistogram('h_seconds', 'help', ['operation', 'outcome'], BUCKETS, new Registry());
  expect(() => ours.observe(Number.NaN, 'Me', 'ok')).toThrow('histogram h_seconds expects a finite number, but got NaN');
  expect(() => ours.observe(1, 'Me')).toThrow('histogram h_seconds expects labels operation, outcome, but got 1 values');
});
