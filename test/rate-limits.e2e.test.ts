/**
 * Rate limits end to end (issue 7): two gateway processes on one Redis, over
 * HTTP, graphql-ws and multipart HTTP. The load test of bench/rate-limit-load.ts
 * at 2,000 requests; refusals with their code, message, extensions and
 * headers; token charges corrected by real usage the client did not ask for;
 * live streams per user shared by both gateways.
 */
import { fireConcurrently, startSecondGateway } from '../bench/rate-limit-load';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

const ENV = {
  GATEWAY_TRUST_PROXY: 'true',
  GATEWAY_RATE_LIMITS: 'default:rpm=5,tpm=5000,streams=1; anonymous:rpm=500,tpm=unlimited,streams=unlimited',
};
let stack: TestStack;
let second: { url: string; stop(): Promise<void> };

beforeAll(async () => {
  stack = await startTestStack(ENV);
  second = await startSecondGateway(stack, { ...ENV, SLUICE_LOG_LEVEL: 'warn' });
}, 180_000);

afterAll(async () => {
  await second?.stop();
  await stack?.stop();
}, 60_000);

/** A fresh user, signing up from an address of its own (anonymous requests count per address). */
async function signUp(): Promise<string> {
  const res = await gql(
    stack.gatewayUrl,
    'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "R") { token } }',
    { e: uniqueEmail('rate') },
    { 'x-forwarded-for': randomIp() },
  );
  return res.data!.signUp.token;
}

const randomIp = () => `10.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

it('two gateways admit exactly the limit out of 2,000 concurrent requests, refusing the rest with 429 and the headers', async () => {
  const result = await fireConcurrently([stack.gatewayUrl, second.url], 2_000, randomIp());
  expect(result.other).toEqual({});
  expect(result.admitted).toBe(500);
  expect(result.refused).toBe(1_500);
  expect(result.wellFormedRefusals).toBe(1_500);
  expect(result.admittedWithHeaders).toBe(500);
  expect(result.admittedBy.every((n) => n > 0)).toBe(true); // both gateways admitted some: the limit is shared, not per process
});

it('counts an API key over HTTP and WebSocket together, across gateways, and refuses over WebSocket with the operation error', async () => {
  const token = await signUp();
  const created = await gql(stack.gatewayUrl, 'mutation { createApiKey(name: "limited", scopes: [BILLING_READ]) { secret } }', {}, bearer(token));
  const key = created.data!.createApiKey.secret as string;
  const first = await gql(stack.gatewayUrl, '{ __typename }', {}, bearer(key));
  expect(first.status).toBe(200);
  expect([first.headers.get('ratelimit-limit'), first.headers.get('ratelimit-remaining')]).toEqual(['5', '4']);
  expect(first.headers.get('ratelimit-reset')).toMatch(/^\d+$/);
  await gql(second.url, '{ __typename }', {}, bearer(key));
  const client = wsClient(second.url, key);
  try {
    for (let i = 0; i < 3; i++) expect((await collect(client, '{ __typename }', {}))[0].errors).toBeUndefined();
    const [refused] = await collect(client, '{ __typename }', {});
    expect(refused.errors?.[0].message).toMatch(/^too many requests for this API key: all 5 of the limit of 5 requests per minute are used \(plan "default", a sliding 60 s window\); retry in \d+ s$/);
    expect(refused.errors?.[0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 5, scope: 'key', kind: 'rpm', remaining: 0, retryAfter: expect.any(Number) });
  } finally {
    await client.dispose();
  }
  const http = await gql(stack.gatewayUrl, '{ __typename }', {}, bearer(key));
  expect(http.status).toBe(429);
  expect(Number(http.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(http.headers.get('ratelimit-remaining')).toBe('0');
  // The key's user has a counter of its own.
  expect((await gql(stack.gatewayUrl, '{ __typename }', {}, bearer(token))).status).toBe(200);
});

const INPUT = { model: 'sluice-chat', messages: [{ role: 'user', content: 'Name a river.' }], maxTokens: 12, temperature: 0.7, seed: 11 };

it("charges a completion's maxTokens at admission and corrects it with the real usage, which the client did not select", async () => {
  // The same seeded completion, with its usage, for another user: the real count.
  const measured = await gql(stack.gatewayUrl, 'mutation($i: CompletionInput!) { complete(input: $i) { usage { totalTokens } } }', { i: INPUT }, bearer(await signUp()));
  const real = measured.data!.complete.usage.totalTokens as number;
  expect(real).toBeGreaterThan(0);

  const token = await signUp();
  const done = await gql(stack.gatewayUrl, 'mutation($i: CompletionInput!) { complete(input: $i) { text } }', { i: INPUT }, bearer(token));
  expect(done.errors).toBeUndefined();
  expect(Object.keys(done.data!.complete)).toEqual(['text']); // the gateway's own usage field never reaches the client
  const refused = await gql(stack.gatewayUrl, 'mutation($i: CompletionInput!) { complete(input: $i) { text } }', { i: { ...INPUT, maxTokens: 5000 } }, bearer(token));
  expect(refused.status).toBe(429);
  expect(refused.errors?.[0].message).toMatch(new RegExp(`^too many tokens for this user: this request counts 5000 \\(its maxTokens\\) and ${real} of the limit of 5000 tokens per minute are used`));
  expect(refused.errors?.[0].extensions).toMatchObject({ code: 'RATE_LIMITED', kind: 'tpm', scope: 'user', limit: 5000, remaining: 5000 - real });
});

const STREAM = 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta finishReason } }';

it("limits a user's live streams across both gateways (graphql-ws and multipart), and frees the slot when a stream ends", async () => {
  const token = await signUp();
  const first = wsClient(stack.gatewayUrl, token);
  const other = wsClient(second.url, token);
  try {
    const live = first.iterate({ query: STREAM, variables: { i: { ...INPUT, maxTokens: 900 } } });
    expect((await live.next()).done).toBe(false);
    const [refused] = await collect(other, STREAM, { i: INPUT });
    expect(refused.errors?.[0].message).toBe('too many live subscriptions for this user: the limit is 1 across all gateways (plan "default"), with 1 live; end one before starting another');
    expect(refused.errors?.[0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 1, scope: 'user', kind: 'streams' });

    const multipart = await fetch(second.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0"', ...bearer(token) },
      body: JSON.stringify({ query: STREAM, variables: { i: INPUT } }),
    });
    expect(multipart.status).toBe(429);
    expect(Number(multipart.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await multipart.json()) as { errors: Array<{ extensions: Record<string, unknown> }> }).errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', kind: 'streams' });

    await live.return?.(undefined);
    let admitted: Awaited<ReturnType<typeof collect>> = [];
    // The release reaches Redis just after the unsubscribe does.
    for (let i = 0; i < 50 && !admitted.at(-1)?.data; i++) {
      admitted = await collect(other, STREAM, { i: { ...INPUT, maxTokens: 2 } });
      if (!admitted.at(-1)?.data) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect((admitted.at(-1)?.data as { completionStream?: { finishReason: string } } | undefined)?.completionStream?.finishReason).toMatch(/^(STOP|LENGTH)$/);
  } finally {
    await Promise.all([first.dispose(), other.dispose()]);
  }
});
