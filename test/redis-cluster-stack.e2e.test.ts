import { createHash, randomUUID } from 'node:crypto';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startRedisCluster, type RedisCluster } from './support/redis-cluster';
import { startTestStack, type TestStack } from './support/stack';

/**
 * The whole stack on a real Redis Cluster (REDIS_CLUSTER_NODES): auth's
 * accounts and API keys, billing's reserve and settle through a completion,
 * the gateway's rate limits, persisted queries and response cache. The
 * cluster runs with the default user only (see test/support/redis-cluster.ts).
 */
const ADMIN_EMAIL = `cluster-admin-${process.pid}-${Date.now()}@example.test`;
const RPM = 40;
/** Short, so a revocation can be waited out (the gateway keeps a verified credential this long). */
const CREDENTIALS_CACHE_MS = 500;

let cluster: RedisCluster;
let stack: TestStack;
let adminToken: string;

beforeAll(async () => {
  cluster = await startRedisCluster();
  const before = process.env.REDIS_URL;
  process.env.REDIS_URL = cluster.url;
  try {
    stack = await startTestStack({
      REDIS_CLUSTER_NODES: cluster.nodeList,
      GATEWAY_WORKERS: '1',
      GATEWAY_CREDENTIALS_CACHE_MS: String(CREDENTIALS_CACHE_MS),
      AUTH_ADMIN_EMAILS: ADMIN_EMAIL,
      BILLING_FREE_CREDIT_MICROS: '0',
      GATEWAY_RATE_LIMITS: `default:rpm=${RPM},tpm=unlimited,streams=unlimited; anonymous:rpm=500,tpm=unlimited,streams=unlimited`,
    });
  } finally {
    if (before === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = before;
  }
  adminToken = (await signUp(ADMIN_EMAIL)).token;
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await cluster?.stop();
}, 60_000);

async function signUp(email = uniqueEmail('cluster')): Promise<{ token: string; id: string }> {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "C") { token user { id } } }', { e: email });
  expect(res.errors).toBeUndefined();
  return { token: res.data!.signUp.token, id: res.data!.signUp.user.id };
}

async function topUp(userId: string, micros: number): Promise<number> {
  const res = await gql(
    stack.gatewayUrl,
    'mutation($u: ID!, $a: Micros!, $k: String!) { topUp(userId: $u, amountMicros: $a, idempotencyKey: $k) { total } }',
    { u: userId, a: micros, k: randomUUID() },
    bearer(adminToken),
  );
  expect(res.errors).toBeUndefined();
  return res.data!.topUp.total;
}

it('auth: sign-up, a second sign-up with the same e-mail refused, login, an API key created, used and revoked', async () => {
  const email = uniqueEmail('cluster');
  const user = await signUp(email);
  const again = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "C") { token } }', { e: email });
  expect(again.errors?.[0].extensions?.code).toBeDefined();
  const login = await gql(stack.gatewayUrl, 'mutation($e: String!) { login(email: $e, password: "correct horse battery") { token } }', { e: email });
  expect(login.errors).toBeUndefined();
  const created = await gql(stack.gatewayUrl, 'mutation { createApiKey(name: "ci", scopes: [BILLING_READ]) { secret apiKey { id } } }', {}, bearer(user.token));
  expect(created.errors).toBeUndefined();
  const { secret, apiKey } = created.data!.createApiKey;
  expect((await gql(stack.gatewayUrl, '{ me { id } }', {}, bearer(secret))).data).toEqual({ me: { id: user.id } });
  expect((await gql(stack.gatewayUrl, 'mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }', { id: apiKey.id }, bearer(user.token))).errors).toBeUndefined();
  await new Promise((resolve) => setTimeout(resolve, CREDENTIALS_CACHE_MS + 200));
  expect((await gql(stack.gatewayUrl, '{ me { id } }', {}, bearer(secret))).errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
});

it('billing: a completion holds, settles and charges exactly its priced usage, once when sent again with its idempotency key', async () => {
  const user = await signUp();
  expect(await topUp(user.id, 5_000_000)).toBe(5_000_000);
  const price = (await gql(stack.gatewayUrl, '{ model(id: "sluice-chat") { pricing { inputCacheHit inputCacheMiss output } } }')).data!.model.pricing;
  const complete = () =>
    gql(
      stack.gatewayUrl,
      'mutation($i: CompletionInput!, $k: String) { complete(input: $i, idempotencyKey: $k) { id usage { promptCacheHitTokens promptCacheMissTokens completionTokens } } }',
      { i: { model: 'sluice-chat', messages: [{ role: 'user', content: 'Name a river.' }], maxTokens: 4, seed: 1 }, k: `cluster-${user.id}` },
      bearer(user.token),
    );
  const done = await complete();
  expect(done.errors).toBeUndefined();
  // The idempotency key's claim and result live on the cluster too: the same answer, and (below) one charge.
  expect((await complete()).data).toEqual(done.data);
  const u = done.data!.complete.usage;
  const charge = Math.ceil((u.promptCacheHitTokens * price.inputCacheHit + u.promptCacheMissTokens * price.inputCacheMiss + u.completionTokens * price.output) / 1_000_000);
  const deadline = Date.now() + 20_000;
  let balance: { total: number; reserved: number } | undefined;
  while (Date.now() < deadline) {
    balance = (await gql(stack.gatewayUrl, '{ me { balance { total reserved } } }', {}, bearer(user.token))).data?.me.balance;
    if (balance?.total === 5_000_000 - charge && balance.reserved === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(balance).toEqual({ total: 5_000_000 - charge, reserved: 0 });
});

it('rate limits: a user gets exactly their requests per minute', async () => {
  const user = await signUp();
  const replies = await Promise.all(Array.from({ length: RPM + 4 }, () => gql(stack.gatewayUrl, '{ me { id } }', {}, bearer(user.token))));
  expect(replies.filter((r) => !r.errors).length).toBe(RPM);
  expect(replies.filter((r) => r.errors?.[0].extensions?.code === 'RATE_LIMITED').length).toBe(4);
});

it('persisted queries: an unknown hash is asked for, registered with its document, then run from the hash alone', async () => {
  const query = `query ClusterApq${Date.now()} { models { id } }`;
  const hash = createHash('sha256').update(query).digest('hex');
  const post = async (body: Record<string, unknown>) =>
    (await fetch(stack.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json())) as {
      data?: unknown;
      errors?: Array<{ extensions?: { code?: string } }>;
    };
  const extensions = { persistedQuery: { version: 1, sha256Hash: hash } };
  expect((await post({ extensions })).errors?.[0].extensions?.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  expect((await post({ query, extensions })).errors).toBeUndefined();
  expect((await post({ extensions })).data).toEqual((await post({ query })).data);
});

it('knowledge: a document is ingested, found by search, listed, and deleted from search', async () => {
  const user = await signUp();
  await topUp(user.id, 5_000_000); // embedding is billed
  const added = await gql(
    stack.gatewayUrl,
    'mutation($t: String!, $c: String!) { addDocument(title: $t, content: $c) { id } }',
    { t: 'Espresso', c: '# Grinding\n\nWhen espresso runs too fast, grind finer; when it runs too slow, grind coarser. Dose and yield stay fixed while you tune the grind.' },
    bearer(user.token),
  );
  expect(added.errors).toBeUndefined();
  const id = added.data!.addDocument.id as string;
  const deadline = Date.now() + 60_000;
  let status = '';
  while (Date.now() < deadline && status !== 'READY') {
    status = (await gql(stack.gatewayUrl, 'query($d: ID!) { document(id: $d) { status } }', { d: id }, bearer(user.token))).data?.document?.status;
    if (status === 'FAILED') break;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect(status).toBe('READY');
  const search = () => gql(stack.gatewayUrl, '{ search(query: "espresso grind finer", k: 5) { document { id } } }', {}, bearer(user.token));
  expect((await search()).data!.search).toEqual(expect.arrayContaining([{ document: { id } }]));
  expect((await gql(stack.gatewayUrl, '{ documents { id } }', {}, bearer(user.token))).data!.documents).toEqual([{ id }]);
  expect((await gql(stack.gatewayUrl, 'mutation($d: ID!) { deleteDocument(id: $d) }', { d: id }, bearer(user.token))).data!.deleteDocument).toBe(id);
  expect((await search()).data!.search).toEqual([]);
}, 90_000);
