/**
 * The gateway's response cache (issue 7) on the whole stack: the subgraphs'
 * `@cacheControl` hints become their Cache-Control headers, the gateway folds
 * them into each response's policy and keeps cacheable responses in Redis.
 * PRIVATE responses (`me`) are per user; `models` with prices is PUBLIC.
 */
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

let stack: TestStack;
const users: Array<{ id: string; email: string; token: string }> = [];

async function signUp(): Promise<{ id: string; email: string; token: string }> {
  const email = uniqueEmail('cache');
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "C") { token user { id } } }', { e: email });
  return { id: res.data!.signUp.user.id, email, token: res.data!.signUp.token };
}

beforeAll(async () => {
  stack = await startTestStack();
  users.push(await signUp(), await signUp());
}, 180_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const ME = 'query Me { me { id email } }';

it('keeps a PRIVATE response per user: each user gets their own data, from the cache the second time', async () => {
  const [alice, bob] = users;
  const first = await gql(stack.gatewayUrl, ME, {}, bearer(alice.token));
  expect(first.data).toEqual({ me: { id: alice.id, email: alice.email } });
  expect([first.headers.get('x-cache'), first.headers.get('cache-control')]).toEqual(['MISS', 'max-age=5, private']);

  const bobFirst = await gql(stack.gatewayUrl, ME, {}, bearer(bob.token));
  expect(bobFirst.data).toEqual({ me: { id: bob.id, email: bob.email } });
  expect(bobFirst.headers.get('x-cache')).toBe('MISS');

  const again = await gql(stack.gatewayUrl, ME, {}, bearer(alice.token));
  const bobAgain = await gql(stack.gatewayUrl, ME, {}, bearer(bob.token));
  expect([again.headers.get('x-cache'), again.data]).toEqual(['HIT', first.data]);
  expect([bobAgain.headers.get('x-cache'), bobAgain.data]).toEqual(['HIT', bobFirst.data]);
  expect(again.headers.get('cache-control')).toMatch(/^max-age=[1-5], private$/);
});

it('does not keep a PRIVATE response for an anonymous caller', async () => {
  await gql(stack.gatewayUrl, ME);
  const second = await gql(stack.gatewayUrl, ME);
  expect([second.headers.get('x-cache'), second.data]).toEqual(['MISS', { me: null }]);
});

it('never keeps a response with errors: fields the caller may not see are refused every time', async () => {
  const [alice] = users;
  const key = await gql(stack.gatewayUrl, 'mutation { createApiKey(name: "narrow", scopes: [BILLING_READ]) { secret } }', {}, bearer(alice.token));
  const narrow = key.data!.createApiKey.secret as string;
  const query = '{ me { id email } document(id: "none") { id } }';
  for (const _ of [1, 2]) {
    const res = await gql(stack.gatewayUrl, query, {}, bearer(narrow));
    expect(res.headers.get('x-cache')).toBe('MISS');
    expect(res.data).toEqual({ me: { id: alice.id, email: alice.email }, document: null });
    expect(res.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
  }
});

it('bypasses the cache for mutations', async () => {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "M") { user { id } } }', { e: uniqueEmail('cache-mutation') });
  expect(res.headers.get('x-cache')).toBe('BYPASS');
  expect(res.headers.get('cache-control')).toBe('no-store');
});

it('keeps a PUBLIC response for everyone: the same prices from the cache for another user and for anonymous callers', async () => {
  const [alice, bob] = users;
  const query = 'query Prices { models { id kind pricing { output } } }';
  const first = await gql(stack.gatewayUrl, query, {}, bearer(alice.token));
  expect(first.errors).toBeUndefined();
  expect(first.headers.get('cache-control')).toMatch(/^max-age=\d+, public$/);
  const forBob = await gql(stack.gatewayUrl, query, {}, bearer(bob.token));
  const anonymous = await gql(stack.gatewayUrl, query);
  expect([forBob.headers.get('x-cache'), forBob.data]).toEqual(['HIT', first.data]);
  expect([anonymous.headers.get('x-cache'), anonymous.data]).toEqual(['HIT', first.data]);
});

it('answers a hit with the very bytes the miss sent: the data is stored as it was serialized for the response', async () => {
  const send = async () => {
    const res = await fetch(stack.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'query PricesAsSent { models { id pricing { output } } }' }),
    });
    return { cache: res.headers.get('x-cache'), text: await res.text() };
  };
  const miss = await send();
  const hit = await send();
  expect([miss.cache, hit.cache]).toEqual(['MISS', 'HIT']);
  expect(JSON.parse(miss.text).data.models.length).toBeGreaterThan(0);
  expect(miss.text).toBe(`${JSON.stringify(JSON.parse(miss.text))}\n`);
  expect(hit.text).toBe(miss.text);
});
