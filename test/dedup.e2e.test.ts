/**
 * Deduplication through the whole stack (issue 7, item 5): many callers
 * sending the same operations at once each get exactly their own data —
 * one user never sees another's — while identical operations in flight are
 * executed once (counted on /metrics) and serialized once: its callers get
 * the same bytes, each with the headers of its own request.
 */
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
const users: { email: string; token: string; id: string }[] = [];

beforeAll(async () => {
  // Rate limits high enough never to refuse: each response carries its caller's own quota headers.
  stack = await startTestStack({ GATEWAY_WORKERS: '1', GATEWAY_RESPONSE_CACHE: 'false', GATEWAY_RATE_LIMITS: 'default:rpm=1000000;anonymous:rpm=1000000' });
  for (const name of ['alice', 'bob', 'carol']) {
    const email = uniqueEmail(`dedup-${name}`);
    const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "D") { token user { id } } }', { e: email });
    users.push({ email, token: res.data!.signUp.token, id: res.data!.signUp.user.id });
  }
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function deduplicated(kind: 'fetch' | 'operation'): Promise<number> {
  const text = await (await fetch(stack.gatewayUrl.replace(/\/graphql$/, '/metrics'), { headers: { authorization: `Bearer ${stack.env.GATEWAY_METRICS_TOKEN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`sluice_gateway_deduplicated_total{kind="${kind}"}`));
  return Number(line?.split(' ').pop() ?? NaN);
}

it("gives every caller of the same private operation their own data, never another user's", async () => {
  const before = await deduplicated('operation');
  const query = '{ me { id email documents { id } } }';
  // Interleaved, so that the users' identical operations are in flight together.
  const calls = Array.from({ length: 60 }, (_, i) => users[i % users.length]).map(async (user) => ({ user, res: await gql(stack.gatewayUrl, query, {}, bearer(user.token)) }));
  for (const { user, res } of await Promise.all(calls)) {
    expect(res.errors).toBeUndefined();
    expect(res.data!.me).toEqual({ id: user.id, email: user.email, documents: [] });
  }
  // 20 identical operations per user arrived together: some were answered by one in flight.
  expect(await deduplicated('operation')).toBeGreaterThan(before);
});

it('shares a public operation between users and anonymous callers alike', async () => {
  const query = '{ models { id ready } }';
  const callers = [...users.map((u) => bearer(u.token)), {}];
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => gql(stack.gatewayUrl, query, {}, callers[i % callers.length])));
  const expected = results[0].data;
  expect(expected!.models.length).toBeGreaterThan(0);
  for (const res of results) {
    expect(res.errors).toBeUndefined();
    expect(res.data).toEqual(expected);
  }
});

/** POSTs `query` and keeps the body as it came, byte for byte. */
async function post(query: string, headers: Record<string, string>): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(stack.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query }) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

it('sends every caller of one execution the same bytes, each with the rate-limit headers of its own request', async () => {
  const before = await deduplicated('operation');
  const query = '{ models { id ready pricing { output } } }';
  const responses = await Promise.all(Array.from({ length: 30 }, (_, i) => users[i % users.length]).map(async (user) => ({ user, ...(await post(query, bearer(user.token))) })));
  const body = responses[0].text;
  expect(JSON.parse(body).data.models.length).toBeGreaterThan(0);
  // What Apollo Server itself writes: the result's JSON and a newline.
  expect(body).toBe(`${JSON.stringify(JSON.parse(body))}\n`);
  for (const res of responses) expect([res.status, res.text]).toEqual([200, body]);
  for (const user of users) {
    const remaining = responses.filter((res) => res.user === user).map((res) => res.headers.get('ratelimit-remaining'));
    // Each request took one unit of its user's quota: no two of a user's responses say the same.
    expect(remaining.every((value) => value !== null)).toBe(true);
    expect(new Set(remaining).size).toBe(remaining.length);
  }
  expect(await deduplicated('operation')).toBeGreaterThan(before);
});

it("completes a shared narrowed operation for each caller: the public field, and null with the caller's error for the refused one", async () => {
  const before = await deduplicated('operation');
  const responses = await Promise.all(Array.from({ length: 20 }, () => gql(stack.gatewayUrl, '{ models { id } documents { id } }')));
  for (const res of responses) {
    expect(res.data!.models.length).toBeGreaterThan(0);
    expect(res.data!.documents).toBeNull();
    expect(res.errors!.map((error) => [error.extensions?.code, error.path])).toEqual([['UNAUTHENTICATED', ['documents']]]);
  }
  expect(await deduplicated('operation')).toBeGreaterThan(before);
});

it('never shares a mutation: each caller gets its own result', async () => {
  const same = () => gql(stack.gatewayUrl, 'mutation($n: String!) { createApiKey(name: $n, scopes: [KNOWLEDGE_READ]) { secret } }', { n: 'same' }, bearer(users[0].token));
  const results = await Promise.all([same(), same(), same(), same()]);
  const secrets = results.map((res) => {
    expect(res.errors).toBeUndefined();
    return res.data!.createApiKey.secret as string;
  });
  expect(new Set(secrets).size).toBe(4);
});
