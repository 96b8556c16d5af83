/**
 * Federation parity (issue 19): on the same subgraphs (test/support/federation-fixture.ts),
 * Sluice's gateway with its default settings, for an anonymous caller, answers
 * every query of `PARITY_QUERIES` with the same status and the same response
 * body, byte for byte, as stock @apollo/gateway under @apollo/server — with
 * deduplication on and off. No key is removed before comparing: by default
 * Sluice adds nothing to a response.
 */
import { startTestGateway, type TestGateway } from '../gateway/testing/gateway-on-port-0';
import { PARITY_QUERIES, postOperation as answer, startFederationFixture, startStockGateway, type ParityQuery, type RunningFixture, type StockGateway } from './support/federation-fixture';

let fixture: RunningFixture;
let stock: StockGateway;
const sluice: Record<Mode, TestGateway | undefined> = { 'dedup on': undefined, 'dedup off': undefined };

beforeAll(async () => {
  fixture = await startFederationFixture();
  stock = await startStockGateway(fixture.supergraphSdl);
  sluice['dedup on'] = await startTestGateway({ GATEWAY_DEDUP: 'true' }, fixture.supergraphFile);
  sluice['dedup off'] = await startTestGateway({ GATEWAY_DEDUP: 'false' }, fixture.supergraphFile);
}, 60_000);

afterAll(async () => {
  await Promise.all([sluice['dedup on']?.stop(), sluice['dedup off']?.stop(), stock?.stop()]);
  await fixture?.stop();
});

type Mode = 'dedup on' | 'dedup off';

async function compare(mode: Mode, query: ParityQuery): Promise<void> {
  const expected = await answer(stock.url, query);
  const got = await answer((sluice[mode] as TestGateway).url, query);
  expect(got).toEqual(expected);
}

describe.each(['dedup on', 'dedup off'] as const)('Sluice with %s answers as stock @apollo/gateway does', (mode) => {
  it.each(PARITY_QUERIES.map((q) => [q.name, q] as const))('%s', (_name, query) => compare(mode, query));
});

it("with dedup on, identical queries sent together (joiners sharing one execution) each get stock's bytes", async () => {
  const shared = PARITY_QUERIES;
  const expected = await Promise.all(shared.map((q) => answer(stock.url, q)));
  const got = await Promise.all(shared.map((q) => Promise.all(Array.from({ length: 4 }, () => answer((sluice['dedup on'] as TestGateway).url, q)))));
  got.forEach((answers, i) => {
    for (const one of answers) expect({ name: shared[i].name, ...one }).toEqual({ name: shared[i].name, ...expected[i] });
  });
});

it('the fixture exercises what it claims: data, errors with paths, and a propagated null', async () => {
  const bodies = await Promise.all(PARITY_QUERIES.map((q) => answer(stock.url, q)));
  const byName = Object.fromEntries(PARITY_QUERIES.map((q, i) => [q.name, JSON.parse(bodies[i].body)]));
  expect(byName['@requires across subgraphs'].data.topProducts[0]).toEqual({ upc: 'p1', shippingEstimate: 3, inStock: true });
  expect(byName['nullable error in a nested entity fetch'].errors).toEqual([expect.objectContaining({ message: 'warehouse of p5 unavailable', path: ['topProducts', 4, 'warehouse'] })]);
  const reviews = byName['non-null error in a nested entity fetch propagates to the nearest nullable parent'].data.latestReviews as Array<{ product: unknown }>;
  expect(reviews.filter((r) => r.product === null).length).toBeGreaterThan(0);
  expect(byName['non-null error nulls a nullable root field'].data).toEqual({ product: null, fine: { upc: 'p1' } });
  expect(byName['@provides (username from reviews, name from accounts)'].data.others[0].author).toEqual({ username: 'user4', name: 'User 4' });
  // Four are refused before execution: a validation error, a syntax error, a missing operation, a variable of the wrong type.
  expect(bodies.filter((b) => b.status === 200 && JSON.parse(b.body).data).length).toBe(PARITY_QUERIES.length - 4);
});
