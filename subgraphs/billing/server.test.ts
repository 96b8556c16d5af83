import { createPrivateKey } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { GraphQLError } from 'graphql';
import { BillingClient } from '../../lib/billing-client';
import { IDENTITY_HEADER, IdentitySigner, generateIdentityKeyPair } from '../../lib/identity';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { publishUsageEvent } from '../../lib/usage-events';
import type { RunningService } from '../../lib/subgraph-service';
import { freePort } from '../../scripts/free-port';
import { startRedisServer } from '../../scripts/redis-server';
import { gql } from '../../test/support/graphql';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { startBilling } from './server';
import { eventually, expectedCharge, newUser, usageEvent } from './testing/fixtures';

const SESSION_SCOPES = ['inference:invoke', 'knowledge:read', 'knowledge:write', 'billing:read'];
const CHAT = { inputCacheHit: 28_000, inputCacheMiss: 280_000, output: 420_000 }; // sluice-chat in prices.yaml

let testRedis: TestRedis;
let redis: Redis;
let billing: RunningService;
let signer: IdentitySigner;
let client: BillingClient;
let url: string;

beforeAll(async () => {
  const keys = generateIdentityKeyPair();
  process.env.SLUICE_IDENTITY_PUBLIC_KEY = keys.publicKeyPem;
  signer = new IdentitySigner(createPrivateKey(keys.privateKeyPem));
  testRedis = await startTestRedis();
  redis = testRedis.connect();
  billing = await startBilling({ host: '127.0.0.1', port: 0, redisUrl: testRedis.url, log: createLogger({ service: 'billing' }) });
  url = `http://127.0.0.1:${billing.port}`;
  client = new BillingClient({ baseUrl: url });
});

afterAll(async () => {
  client.close();
  await billing.stop();
  await testRedis.stop();
});

const session = (sub: string | null) => signer.sign({ sub, scopes: SESSION_SCOPES }, ['billing']);
const admin = () => signer.sign({ sub: 'admin-1', scopes: [...SESSION_SCOPES, 'admin'] }, ['billing']);
const withKey = (sub: string, keyId: string) => signer.sign({ sub, scopes: ['inference:invoke', 'billing:read'], keyId }, ['billing']);
const query = (identity: string, text: string, variables: Record<string, unknown> = {}) => gql(`${url}/graphql`, text, variables, { [IDENTITY_HEADER]: identity });
const entities = (identity: string, id: string, selection: string) =>
  query(identity, `query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { ${selection} } } }`, { r: [{ __typename: 'User', id }] });

async function refused(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

it('reserves over the route, settles from the stream, and shows the same integers in balance, usage and invoices', async () => {
  const user = newUser();
  const held = await client.reserve(session(user), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 2000, maxCompletionTokens: 1000 });
  const max = expectedCharge(CHAT, 0, 2000, 1000);
  expect(held).toMatchObject({ amountMicros: max, state: 'held' });
  const during = await entities(session(user), user, 'balance { total reserved available }');
  expect(during.data!._entities[0].balance).toEqual({ total: 5_000_000, reserved: max, available: 5_000_000 - max });

  // A stream cancelled after 40 tokens: billed for what was generated, never for the reservation.
  await publishUsageEvent(
    redis,
    usageEvent({ userId: user, model: 'sluice-chat', reservationId: held.reservationId, promptCacheHitTokens: 1200, promptCacheMissTokens: 300, completionTokens: 40, finishReason: 'CANCELLED' }),
  );
  const charge = expectedCharge(CHAT, 1200, 300, 40);
  const balance = async () => (await entities(session(user), user, 'balance { total reserved }')).data!._entities[0].balance;
  await eventually('the usage event to settle', async () => (await balance()).reserved === 0);
  expect(await balance()).toEqual({ total: 5_000_000 - charge, reserved: 0 });

  const from = new Date(Date.now() - 86_400_000).toISOString();
  const to = new Date(Date.now() + 86_400_000).toISOString();
  const res = await entities(
    session(user),
    user,
    `usage(from: "${from}", to: "${to}", groupBy: MODEL) { key requests promptTokens promptCacheHitTokens promptCacheMissTokens completionTokens amount }
     invoices { month total currency lines { model requests amount } }`,
  );
  expect(res.errors).toBeUndefined();
  const me = res.data!._entities[0];
  expect(me.usage).toEqual([{ key: 'sluice-chat', requests: 1, promptTokens: 1500, promptCacheHitTokens: 1200, promptCacheMissTokens: 300, completionTokens: 40, amount: charge }]);
  expect(me.invoices).toEqual([{ month: new Date().toISOString().slice(0, 7), total: charge, currency: 'USD', lines: [{ model: 'sluice-chat', requests: 1, amount: charge }] }]);
});

it('refuses over the route with coded errors the client re-raises', async () => {
  const user = newUser();
  const short = await refused(client.reserve(session(user), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 10_000_000, maxCompletionTokens: 10_000_000 }));
  expect(short.extensions).toEqual({ code: 'INSUFFICIENT_BALANCE', needed: 7_000_000, available: 5_000_000 });
  const unpriced = await refused(client.reserve(session(user), { reservationId: randomUUID(), model: 'nope', promptTokens: 1, maxCompletionTokens: 1 }));
  expect(unpriced.extensions.code).toBe('MODEL_NOT_PRICED');
  const bad = await refused(client.reserve(session(user), { reservationId: 'not-a-uuid', model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 }));
  expect(bad.message).toBe('reservation reservationId expects a UUID, but got "not-a-uuid"');
  const anonymous = await refused(client.reserve(session(null), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 }));
  expect(anonymous.extensions.code).toBe('UNAUTHENTICATED');
  const forged = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem)).sign({ sub: user, scopes: SESSION_SCOPES }, ['billing']);
  expect((await refused(client.reserve(forged, { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 }))).extensions.code).toBe('UNAUTHENTICATED');
});

it('answers SERVICE_UNAVAILABLE when billing cannot be reached, so nothing runs unbilled', async () => {
  const nowhere = new BillingClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, timeoutMs: 500 });
  const error = await refused(nowhere.reserve(session(newUser()), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 }));
  nowhere.close();
  expect(error.extensions).toMatchObject({ code: 'SERVICE_UNAVAILABLE', service: 'billing' });
  expect(error.message).toMatch(/^billing could not reserve the request's cost \(.*ECONNREFUSED.*\), so the request was not run$/);
});

it('lets the owner cap an API key from a session, enforces it over the route, and never lets a key lift its own cap', async () => {
  const user = newUser();
  const keyId = `key-${randomUUID()}`;
  const set = await query(session(user), 'mutation ($k: ID!) { setApiKeySpendLimit(apiKeyId: $k, dailyMicros: 1000) { apiKeyId daily monthly spentToday spentThisMonth reserved } }', { k: keyId });
  expect(set.data!.setApiKeySpendLimit).toEqual({ apiKeyId: keyId, daily: 1000, monthly: null, spentToday: 0, spentThisMonth: 0, reserved: 0 });
  const fromKey = await query(withKey(user, keyId), 'mutation ($k: ID!) { setApiKeySpendLimit(apiKeyId: $k) { apiKeyId } }', { k: keyId });
  expect(fromKey.errors![0].extensions!.code).toBe('FORBIDDEN');

  await client.reserve(withKey(user, keyId), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 1000, maxCompletionTokens: 1000 }); // 700
  const over = await refused(client.reserve(withKey(user, keyId), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 1000, maxCompletionTokens: 1000 }));
  expect(over.extensions).toEqual({ code: 'SPEND_LIMIT_EXCEEDED', period: 'DAY', cap: 1000, spent: 0, reserved: 700, needed: 700, apiKeyId: keyId });
  const limits = await entities(session(user), user, 'spendLimits { apiKeyId daily reserved }');
  expect(limits.data!._entities[0].spendLimits).toEqual([{ apiKeyId: keyId, daily: 1000, reserved: 700 }]);
});

it("answers NOT_FOUND for another user's balance, usage, invoices and spend limits", async () => {
  const ada = newUser();
  const bob = newUser();
  const from = new Date(Date.now() - 86_400_000).toISOString();
  const to = new Date().toISOString();
  for (const field of ['balance { total }', `usage(from: "${from}", to: "${to}") { key }`, 'invoices { month }', 'spendLimits { apiKeyId }']) {
    const res = await entities(session(bob), ada, field);
    expect(res.errors?.[0].extensions?.code).toBe('NOT_FOUND');
  }
});

it('tops up once per idempotency key, for admins only', async () => {
  const user = newUser();
  const topUp = 'mutation ($u: ID!, $k: String!, $a: Micros!) { topUp(userId: $u, amountMicros: $a, idempotencyKey: $k) { total toppedUp granted } }';
  const key = randomUUID();
  const first = await query(admin(), topUp, { u: user, k: key, a: 3_000_000_000 });
  expect(first.data!.topUp).toEqual({ total: 3_005_000_000, toppedUp: 3_000_000_000, granted: 5_000_000 });
  const again = await query(admin(), topUp, { u: user, k: key, a: 3_000_000_000 });
  expect(again.data!.topUp).toEqual(first.data!.topUp);
  const conflict = await query(admin(), topUp, { u: user, k: key, a: 1 });
  expect(conflict.errors![0].extensions!.code).toBe('CONFLICT');
  const notAdmin = await query(session(user), topUp, { u: user, k: randomUUID(), a: 1 });
  expect(notAdmin.errors![0].extensions!.code).toBe('FORBIDDEN');
});

it('validates the usage range with a clear error', async () => {
  const user = newUser();
  const res = await entities(session(user), user, 'usage(from: "2026-01-01T00:00:00Z", to: "2027-06-01T00:00:00Z") { key }');
  expect(res.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
  expect(res.errors![0].message).toBe('usage expects a range of at most 366 days, but got 516 (2026-01-01T00:00:00.000Z to 2027-06-01T00:00:00.000Z); ask for several ranges');
});

it('settles in in-memory mode too (REDIS_URL=memory://), through the poller that stands in for the consumer group', async () => {
  const memory = await startBilling({ host: '127.0.0.1', port: 0, redisUrl: 'memory://', log: createLogger({ service: 'billing-memory' }) });
  const producer = connectRedis('memory://', createLogger());
  const memoryClient = new BillingClient({ baseUrl: `http://127.0.0.1:${memory.port}` });
  try {
    const user = newUser();
    const held = await memoryClient.reserve(session(user), { reservationId: randomUUID(), model: 'sluice-chat', promptTokens: 100, maxCompletionTokens: 100 });
    await publishUsageEvent(producer, usageEvent({ userId: user, model: 'sluice-chat', reservationId: held.reservationId, promptCacheMissTokens: 100, completionTokens: 7 }));
    const balance = async () =>
      (
        await gql(
          `http://127.0.0.1:${memory.port}/graphql`,
          'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { balance { total reserved } } } }',
          { r: [{ __typename: 'User', id: user }] },
          { [IDENTITY_HEADER]: session(user) },
        )
      ).data!._entities[0].balance;
    await eventually('the in-memory poller to settle', async () => (await balance()).reserved === 0);
    expect(await balance()).toEqual({ total: 5_000_000 - expectedCharge(CHAT, 0, 100, 7), reserved: 0 });
  } finally {
    memoryClient.close();
    producer.disconnect();
    await memory.stop();
  }
});

it('answers SERVICE_UNAVAILABLE (retryable, naming Redis but not its address) when its Redis is gone, not INTERNAL_SERVER_ERROR', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-billing-no-redis-'));
  const server = await startRedisServer(dir);
  const orphan = await startBilling({ host: '127.0.0.1', port: 0, redisUrl: server.url, log: createLogger({ service: 'billing-no-redis' }) });
  try {
    await server.stop();
    const user = newUser();
    const res = await gql(
      `http://127.0.0.1:${orphan.port}/graphql`,
      'query ($r: [_Any!]!) { _entities(representations: $r) { ... on User { balance { total } } } }',
      { r: [{ __typename: 'User', id: user }] },
      {
        [IDENTITY_HEADER]: session(user),
      },
    );
    expect(res.errors).toHaveLength(1);
    expect(res.errors![0].extensions).toEqual({ code: 'SERVICE_UNAVAILABLE', service: 'redis', retryable: true });
    expect(res.errors![0].message).toMatch(/^Redis is unavailable: /);
    expect(res.errors![0].message).not.toContain(new URL(server.url).port);
  } finally {
    await orphan.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
