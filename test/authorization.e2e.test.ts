/**
 * `@authenticated`/`@requiresScopes` from the subgraph schemas, composed into
 * the supergraph and enforced by the gateway before planning, through the
 * whole stack: what a caller may not see is never fetched, and the error
 * names the field.
 */
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

let stack: TestStack;
let triton: TritonClient;

beforeAll(async () => {
  stack = await startTestStack();
  triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 10_000);
}, 180_000);

afterAll(async () => {
  triton?.close();
  await stack?.stop();
}, 60_000);

async function sessionToken(): Promise<string> {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "Z") { token } }', { e: uniqueEmail('authz') });
  expect(res.errors).toBeUndefined();
  return res.data!.signUp.token as string;
}

/** Requests the GPU tier has served for a model: they change only when the inference subgraph was called for it. */
async function inferences(model: string): Promise<number> {
  const stats = (await triton.modelStatistics(model)).model_stats;
  return stats.reduce((sum, s) => sum + Number(s.inference_count), 0);
}

it('lets a session (inference:invoke, knowledge:read/write, billing:read) reach every protected field', async () => {
  const token = await sessionToken();
  const added = await gql(stack.gatewayUrl, 'mutation { addDocument(title: "T", content: "c") { id } }', {}, bearer(token));
  expect(added.errors).toBeUndefined();
  const res = await gql(stack.gatewayUrl, '{ me { id balance { total } documents { title } } documents { title } embed(texts: ["x"]) { index dimensions } }', {}, bearer(token));
  expect(res.errors).toBeUndefined();
  expect(res.data!.me).toMatchObject({ balance: { total: 5_000_000 }, documents: [{ title: 'T' }] });
  expect(res.data!.documents).toEqual([{ title: 'T' }]);
  expect(res.data!.embed).toEqual([{ index: 0, dimensions: expect.any(Number) }]);
});

it('answers an anonymous caller with the public fields, nulls and UNAUTHENTICATED for the protected ones', async () => {
  const res = await gql(stack.gatewayUrl, '{ models { id } me { id balance { total } } }');
  expect(res.status).toBe(200);
  expect(res.data!.models).toEqual(expect.arrayContaining([{ id: 'sluice-embed' }]));
  expect(res.data!.me).toBeNull();
  expect(res.errors).toEqual([expect.objectContaining({ path: ['me', 'balance'], extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', field: 'User.balance' }) })]);
  expect(res.errors![0].message).toContain('"me.balance" (User.balance) requires a signed-in caller');
});

it('never calls the inference subgraph for an anonymous embed; the other root fields are kept', async () => {
  const before = await inferences('sluice-embed');
  const res = await gql(stack.gatewayUrl, '{ models { id } me { id } embed(texts: ["x"]) { index } }');
  expect(res.data).toEqual({ models: expect.arrayContaining([{ id: 'sluice-embed' }]), me: null, embed: null });
  expect(res.errors).toEqual([expect.objectContaining({ path: ['embed'], extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', field: 'Query.embed' }) })]);
  expect(await inferences('sluice-embed')).toBe(before);

  // The same field allowed: the GPU tier is called, so the count above would have moved.
  const allowed = await gql(stack.gatewayUrl, '{ embed(texts: ["x"]) { index } }', {}, bearer(await sessionToken()));
  expect(allowed.errors).toBeUndefined();
  expect(await inferences('sluice-embed')).toBeGreaterThan(before);
});

it('names the field by its aliased path when it is selected through a fragment', async () => {
  const res = await gql(stack.gatewayUrl, 'query Q { catalog: models { ...M } who: me { ...U } } fragment M on Model { id } fragment U on User { id docs: documents { title } }');
  expect(res.data!.catalog).toEqual(expect.arrayContaining([{ id: 'sluice-embed' }]));
  expect(res.data!.who).toBeNull();
  expect(res.errors).toEqual([expect.objectContaining({ path: ['who', 'docs'], extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', field: 'User.documents' }) })]);
});

it('refuses a field an API key lacks the scope for with FORBIDDEN, naming the missing scope, and writes nothing', async () => {
  const created = await gql(stack.gatewayUrl, 'mutation { createApiKey(name: "reader", scopes: [KNOWLEDGE_READ]) { secret } }', {}, bearer(await sessionToken()));
  expect(created.errors).toBeUndefined();
  const key = bearer(created.data!.createApiKey.secret as string);

  const write = await gql(stack.gatewayUrl, 'mutation { addDocument(title: "T", content: "c") { id } }', {}, key);
  expect(write.data).toBeNull();
  expect(write.errors).toEqual([
    expect.objectContaining({
      path: ['addDocument'],
      extensions: expect.objectContaining({ code: 'FORBIDDEN', field: 'Mutation.addDocument', missingScopes: ['knowledge:write'], grantedScopes: ['knowledge:read'] }),
    }),
  ]);
  expect(write.errors![0].message).toBe('the field "addDocument" (Mutation.addDocument) needs the scope knowledge:write: expected knowledge:write, got knowledge:read');

  const read = await gql(stack.gatewayUrl, '{ documents { title } me { id } }', {}, key);
  expect(read.errors).toBeUndefined();
  expect(read.data!.documents).toEqual([]);
});

it('refuses an anonymous subscription to completionStream before anything is sent upstream', async () => {
  const client = wsClient(stack.gatewayUrl);
  try {
    const events = await collect(client, 'subscription { completionStream(input: { messages: [{ role: "user", content: "hi" }] }) { delta } }', {});
    expect(events).toEqual([{ errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'UNAUTHENTICATED', field: 'Subscription.completionStream' }) })] }]);
  } finally {
    await client.dispose();
  }
});
