/**
 * Another team's graph served with `--supergraph` (issue 19): a graph that
 * declares no `@cost`, `@listSize` or auth directive (test/support/federation-fixture.ts).
 * With its default settings Sluice answers the deep, wide, aliased queries
 * stock @apollo/gateway answers, byte for byte; demand control only measures
 * (a metric; `extensions.cost` when asked) until a budget is configured. The
 * one default that still refuses what stock answers, the depth limit, is
 * shown against stock's own answer.
 */
import { Lexer, Source, TokenKind } from 'graphql';
import { startTestGateway, type TestGateway } from '../gateway/testing/gateway-on-port-0';
import { gatewayMetrics } from '../gateway/metrics/gateway-metrics';
import { postOperation, startFederationFixture, startStockGateway, type RunningFixture, type StockGateway } from './support/federation-fixture';

let fixture: RunningFixture;
let stock: StockGateway;
let sluice: TestGateway;
let withExtension: TestGateway;
let budgeted: TestGateway;

beforeAll(async () => {
  fixture = await startFederationFixture();
  stock = await startStockGateway(fixture.supergraphSdl);
  sluice = await startTestGateway({}, fixture.supergraphFile);
  withExtension = await startTestGateway({ GATEWAY_COST_EXTENSION: 'true' }, fixture.supergraphFile);
  budgeted = await startTestGateway({ GATEWAY_MAX_COST: '1000', GATEWAY_COST_EXTENSION: 'true' }, fixture.supergraphFile);
}, 60_000);

afterAll(async () => {
  await Promise.all([sluice?.stop(), withExtension?.stop(), budgeted?.stop(), stock?.stop()]);
  await fixture?.stop();
});

/** `{ me { bestFriend { … name } } }`, `depth` fields deep. */
const friends = (depth: number) => `{ me { ${'bestFriend { '.repeat(depth - 2)}name${' }'.repeat(depth - 2)} } }`;

/** Lists of entities five levels deep across three subgraphs: estimated 22,210 with lists assumed 10 long (the query: 24,420). */
const NESTED_LISTS = '{ users { id name reviews { body product { upc name reviews { rating author { name reviews { id product { name } } } } } } } }';

/** What a generated client sends: hundreds of aliased root fields, each with a fragment, pretty-printed, over 64 KiB and 10,000 tokens (the old limits). */
const BATCHED = [
  'query Batched {',
  ...Array.from(
    { length: 500 },
    (_, i) => `  product${i}: product(upc: "p${(i % 12) + 1}") {\n    ...ProductCard\n    ... on Book {\n      author\n      weight\n    }\n    ... on Furniture {\n      material\n    }\n  }`,
  ),
  '}',
  'fragment ProductCard on Product {\n  __typename\n  upc\n  name\n  price\n}',
].join('\n');

const LEGITIMATE = [
  ['nested lists across subgraphs, over the old cost budget', NESTED_LISTS],
  ['500 aliased root fields in a 76 KB, 12,500-token document, over the old alias, root-field, token and size limits', BATCHED],
  ['30 levels deep, over the old depth limit of 25', friends(30)],
] as const;

describe('with the default settings, Sluice answers what stock @apollo/gateway answers on a foreign graph', () => {
  it.each(LEGITIMATE)(
    '%s',
    async (_name, query) => {
      const expected = await postOperation(stock.url, { query });
      expect(expected.status).toBe(200);
      expect(JSON.parse(expected.body).errors).toBeUndefined();
      expect(await postOperation(sluice.url, { query })).toEqual(expected);
    },
    120_000,
  ); // planning 500 root fields takes each gateway seconds on a loaded machine, once

  it('the batched document is as large as it claims', () => {
    expect(Buffer.byteLength(BATCHED)).toBeGreaterThan(64 * 1024);
    const lexer = new Lexer(new Source(BATCHED));
    let tokens = 0;
    while (lexer.advance().kind !== TokenKind.EOF) tokens += 1;
    expect(tokens).toBeGreaterThan(10_000);
  });
});

describe('demand control on a graph that declares no costs', () => {
  const measured = async () => {
    const text = await gatewayMetrics.text();
    return Number(/sluice_gateway_operation_estimated_cost_count\{mode="measure",result="over"\} (\d+)/.exec(text)?.[1] ?? 0);
  };

  it('measures without refusing: the metric counts an estimate over the default budget', async () => {
    const before = await measured();
    expect((await postOperation(sluice.url, { query: NESTED_LISTS })).status).toBe(200);
    expect(await measured()).toBe(before + 1);
  });

  it('reports the estimate as extensions.cost when asked, without a budget while only measuring', async () => {
    const body = JSON.parse((await postOperation(withExtension.url, { query: NESTED_LISTS })).body);
    expect(body.errors).toBeUndefined();
    expect(body.extensions).toEqual({ cost: { estimated: 22_210 } });
  });

  it('enforces a budget once one is configured, and reports it', async () => {
    const refused = await postOperation(budgeted.url, { query: NESTED_LISTS });
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).errors[0].extensions).toMatchObject({ code: 'COST_LIMIT', estimatedCost: 22_210, maxCost: 1000 });
    const passed = JSON.parse((await postOperation(budgeted.url, { query: '{ users { id reviews { id } } }' })).body);
    expect(passed.extensions).toEqual({ cost: { estimated: 110, max: 1000 } });
  });
});

it('refuses a query 100 levels deep (the depth limit, 64), which stock plans and answers', async () => {
  const query = friends(100);
  const stockAnswer = JSON.parse((await postOperation(stock.url, { query })).body);
  expect(stockAnswer.errors).toBeUndefined();
  expect(stockAnswer.data.me.bestFriend).toBeDefined();
  const refused = await postOperation(sluice.url, { query });
  expect(refused.status).toBe(400);
  expect(JSON.parse(refused.body).errors[0].extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'depth', max: 64, got: 100 });
});
