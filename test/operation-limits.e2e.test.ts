/**
 * Operation limits and demand control at the gateway (issue 7): refused
 * before planning, over HTTP and over WebSocket, with OPERATION_LIMIT naming
 * the limit or COST_LIMIT with the estimate.
 */
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

let stack: TestStack;
let token: string;

beforeAll(async () => {
  stack = await startTestStack({
    GATEWAY_MAX_DEPTH: '4',
    GATEWAY_MAX_ALIASES: '2',
    GATEWAY_MAX_ROOT_FIELDS: '3',
    GATEWAY_MAX_TOKENS: '600',
    GATEWAY_MAX_DOCUMENT_BYTES: '2048',
    GATEWAY_MAX_COST: '200',
  });
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "L") { token } }', { e: uniqueEmail('limits') });
  token = res.data!.signUp.token;
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

describe('over HTTP', () => {
  it('refuses an operation nested too deeply with 400, naming the limit, and runs nothing', async () => {
    const res = await gql(stack.gatewayUrl, '{ me { documents { chunks { document { id } } } } }', {}, bearer(token));
    expect(res.status).toBe(400);
    expect(res.data).toBeUndefined();
    expect(res.errors).toEqual([
      expect.objectContaining({
        message: 'the operation is nested too deeply: expected at most 4, got 5',
        extensions: expect.objectContaining({ code: 'OPERATION_LIMIT', limit: 'depth', max: 4, got: 5 }),
      }),
    ]);
  });

  it('refuses too many aliases and too many root fields', async () => {
    const aliases = await gql(stack.gatewayUrl, '{ a: models { id } b: models { id } c: models { id } }');
    expect(aliases.errors?.[0].extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'aliases', max: 2, got: 3 });
    const roots = await gql(stack.gatewayUrl, '{ models { id } me { id } documents { id } model(id: "x") { id } }', {}, bearer(token));
    expect(roots.errors?.[0].extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'rootFields', max: 3, got: 4 });
  });

  it('refuses a document with too many tokens, or too many bytes, before parsing it', async () => {
    const tokens = await gql(stack.gatewayUrl, `{ models { ${'id '.repeat(650)}} }`);
    expect(tokens.status).toBe(400);
    expect(tokens.errors?.[0].extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'tokens', max: 600 });
    const bytes = await gql(stack.gatewayUrl, `{ models { id } } # ${'x'.repeat(3000)}`);
    expect(bytes.errors?.[0].extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'documentBytes', max: 2048 });
  });

  it('refuses a small document whose fragments expand to too many fields, before anything walks it', async () => {
    const fragments = Array.from({ length: 40 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`).join(' ');
    const res = await gql(stack.gatewayUrl, `query { ...F0 } ${fragments} fragment F40 on Query { models { id } }`);
    expect(res.status).toBe(400);
    expect(res.errors?.[0].extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'expandedFields', max: 20_000 });
  });

  it('lets an operation within every limit through', async () => {
    const res = await gql(stack.gatewayUrl, '{ a: models { id } me { documents { id } } }', {}, bearer(token));
    expect(res.errors).toBeUndefined();
  });
});

describe('over WebSocket', () => {
  it('refuses a subscription beyond a limit before starting it', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    const events = await collect(client, 'subscription { completionStream(input: { messages: [{ role: "user", content: "hi" }], maxTokens: 2 }) { a: delta b: delta c: delta } }', {});
    await client.dispose();
    expect(events).toEqual([{ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'OPERATION_LIMIT', limit: 'aliases', got: 3 }) })] }]);
  });
});

describe('demand control', () => {
  it('refuses an operation whose estimated cost is over the budget, with the estimate, and nothing is fetched', async () => {
    const res = await gql(stack.gatewayUrl, '{ documents(first: 50) { chunks(first: 10) { text } } }', {}, bearer(token));
    expect(res.status).toBe(400);
    expect(res.data).toBeUndefined();
    expect(res.errors?.[0].extensions).toMatchObject({ code: 'COST_LIMIT', estimatedCost: 50 * (1 + 10), maxCost: 200 });
    const within = await gql(stack.gatewayUrl, 'query($n: Int) { documents(first: $n) { chunks(first: 10) { text } } }', { n: 5 }, bearer(token));
    expect(within.errors).toBeUndefined();
  });

  it('prices expensive fields: one completion fits the budget, two in one mutation do not', async () => {
    const complete = 'complete(input: { messages: [{ role: "user", content: "hi" }], maxTokens: 1 }) { text }';
    expect((await gql(stack.gatewayUrl, `mutation { ${complete} }`, {}, bearer(token))).errors).toBeUndefined();
    const refused = await gql(stack.gatewayUrl, `mutation { a: ${complete} b: ${complete} }`, {}, bearer(token));
    expect(refused.errors?.[0].extensions).toMatchObject({ code: 'COST_LIMIT', estimatedCost: 10 + 2 * 100 });
  });

  it('refuses an over-budget subscription over WebSocket before starting it', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    const events = await collect(client, 'subscription { answerStream(question: "q", k: 50) { citations { chunk { index } document { id } } } }', {});
    await client.dispose();
    expect(events).toEqual([{ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'COST_LIMIT' }) })] }]);
  });
});
