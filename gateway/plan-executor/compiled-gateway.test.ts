/**
 * The compiled executor against stock @apollo/gateway on a foreign federated
 * graph (the parity fixture's four subgraphs over real HTTP): every parity
 * query answered byte for byte as stock answers it, through the compiled
 * path (not a fallback to stock), and the path each answer took is pinned.
 */
import * as resultShaping from '@apollo/gateway/dist/resultShaping';
import * as stockExecution from '@apollo/gateway/dist/executeQueryPlan';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { PARITY_QUERIES, type ParityQuery, type RunningFixture, startFederationFixture } from '../../test/support/federation-fixture';
import { compiledPlanGateway } from './compiled-gateway';

let fixture: RunningFixture;
let stock: ApolloServer;
let compiled: ApolloServer;

beforeAll(async () => {
  fixture = await startFederationFixture();
  stock = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl: fixture.supergraphSdl }) });
  compiled = new ApolloServer({ gateway: compiledPlanGateway(new ApolloGateway({ supergraphSdl: fixture.supergraphSdl })) });
  await Promise.all([stock.start(), compiled.start()]);
});

afterAll(async () => {
  await Promise.all([stock?.stop(), compiled?.stop()]);
  await fixture?.stop();
});

async function answer(server: ApolloServer, q: ParityQuery): Promise<string> {
  const response = await server.executeOperation({ query: q.query, variables: q.variables, operationName: q.operationName });
  if (response.body.kind !== 'single') throw new Error(`expected a single result, got ${response.body.kind}`);
  return JSON.stringify(response.body.singleResult);
}

/** How the compiled gateway answered: its own executor and shaping, its executor with stock's shaping (errors), or stock's executor. */
async function compiledAnswer(q: ParityQuery): Promise<{ body: string; path: 'compiled' | 'stock shaping' | 'stock' }> {
  const executions = jest.spyOn(stockExecution, 'executeQueryPlan');
  const shapings = jest.spyOn(resultShaping, 'computeResponse');
  try {
    const body = await answer(compiled, q);
    const path = executions.mock.calls.length > 0 ? 'stock' : shapings.mock.calls.length > 0 ? 'stock shaping' : 'compiled';
    return { body, path };
  } finally {
    executions.mockRestore();
    shapings.mockRestore();
  }
}

/** Queries whose answers carry errors that shaping reports (a null in a non-null field): stock's shaping gives them, after the compiled execution. */
const STOCK_SHAPED = new Set(['non-null error in a nested entity fetch propagates to the nearest nullable parent', 'non-null error nulls a nullable root field']);

/** Schema introspection is not compiled: stock's executor answers it. */
const expectedPath = (q: ParityQuery) => (/__schema\b|__type\s*\(/.test(q.query) ? 'stock' : STOCK_SHAPED.has(q.name) ? 'stock shaping' : 'compiled');

describe('the compiled plan executor answers as stock @apollo/gateway does', () => {
  it.each(PARITY_QUERIES.filter((q) => q.name !== 'a validation error').map((q) => [q.name, q]))('%s', async (_name, q) => {
    const expected = await answer(stock, q);
    // The first request plans and compiles, the next ones find both cached.
    for (let i = 0; i < 2; i++) {
      const got = await compiledAnswer(q);
      expect(got.body).toBe(expected);
      expect(got.path).toBe(expectedPath(q));
    }
  });

  it.each([
    [
      'one response name in several fragments, its selections merged',
      '{ topProducts(first: 6) { ... on Book { reviews { id } } ... on Product { reviews { rating author { name } } } ... on Furniture { reviews { id body } } } }',
    ],
    [
      '__typename aliased, in abstract and concrete positions',
      '{ t: __typename search(text: "o") { k: __typename ... on Category { k2: __typename products { k3: __typename } } } latestReviews(first: 3) { k: __typename author { k: __typename } } }',
    ],
    [
      'constant @skip and @include on fields and fragments',
      '{ topProducts(first: 3) { upc name @include(if: false) price @skip(if: false) ... on Book @skip(if: true) { author } ... on Book @include(if: true) { weight } } }',
    ],
    ['an @include variable left to its default', 'query D($on: Boolean = true) { topProducts(first: 2) { upc reviews @include(if: $on) { id } } }'],
    ['the same entity reached twice, and a null entity', '{ a: product(upc: "p2") { upc reviews { id } } b: product(upc: "p2") { name averageRating } c: product(upc: "none") { reviews { id } } }'],
    ['a mutation', 'mutation { previewReview(input: { body: "ok", rating: 4, authorId: "u2", upc: "p3" }) { id body author { name } product { upc name } } }'],
  ])('%s', async (_name, query) => {
    const q = { name: _name, query };
    const expected = await answer(stock, q);
    for (let i = 0; i < 2; i++) {
      const got = await compiledAnswer(q);
      expect(got.body).toBe(expected);
      expect(got.path).toBe('compiled');
    }
  });

  it('answers a validation error as stock does, before any plan', async () => {
    const q = PARITY_QUERIES.find((p) => p.name === 'a validation error')!;
    expect((await compiledAnswer(q)).body).toBe(await answer(stock, q));
  });

  it('applies @skip/@include per request on one compiled plan, and rejects a missing variable as stock does', async () => {
    const q = PARITY_QUERIES.find((p) => p.name.startsWith('@skip and @include with'))!;
    for (const variables of [{ withReviews: true, skipPrice: false, first: 2 }, { withReviews: false, skipPrice: true, first: 3 }, { withReviews: true, skipPrice: true }, { withReviews: true }]) {
      const v = { ...q, variables };
      const expected = await answer(stock, v);
      await compiledAnswer(v);
      expect((await compiledAnswer(v)).body).toBe(expected);
    }
  });

  it('gives a subgraph that is down the same errors as stock', async () => {
    const sdl = fixture.supergraphSdl.replace(fixture.urls.inventory, 'http://127.0.0.1:9/graphql');
    const down = new ApolloServer({ gateway: compiledPlanGateway(new ApolloGateway({ supergraphSdl: sdl })) });
    const stockDown = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl: sdl }) });
    await Promise.all([down.start(), stockDown.start()]);
    try {
      const q = PARITY_QUERIES.find((p) => p.name === '@requires across subgraphs')!;
      const expected = await answer(stockDown, q);
      expect(expected).toContain('errors');
      await answer(down, q);
      expect(await answer(down, q)).toBe(expected);
    } finally {
      await Promise.all([down.stop(), stockDown.stop()]);
    }
  });
});
