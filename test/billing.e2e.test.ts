/**
 * Billing end to end (issue 9) through the gateway, the whole stack as
 * separate processes: completions reserve before the GPU tier is called and
 * are settled from their usage events, and every figure a user can read
 * (balance, usage, invoices, key spend) moves by exactly the priced usage
 * the completions reported — under concurrency, when a stream is cut short,
 * and when billing is killed mid-load and started again.
 *
 * New users get no free credit here (BILLING_FREE_CREDIT_MICROS=0): each test
 * tops its users up as an admin, so balances are exactly what a test set.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import Redis from 'ioredis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM, type UsageEvent } from '../lib/usage-events';
import { serviceEnv } from '../scripts/stack';
import { renderChat } from '../subgraphs/inference/completions/chat-template';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, wsClient } from './support/subscriptions';

const ADMIN_EMAIL = `billing-admin-${process.pid}-${Date.now()}@example.test`;
const ROOT = path.resolve(__dirname, '..');

let stack: TestStack;
let triton: TritonClient;
let redis: Redis;
let adminToken: string;
let restartedBilling: ChildProcess | undefined;

beforeAll(async () => {
  stack = await startTestStack({
    AUTH_ADMIN_EMAILS: ADMIN_EMAIL,
    BILLING_FREE_CREDIT_MICROS: '0',
    // A killed billing's pending events are reclaimed by the next one within a second.
    BILLING_CLAIM_IDLE_MS: '1000',
    GATEWAY_SUBSCRIPTIONS_PER_USER: '64',
  });
  triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 10_000);
  redis = new Redis(stack.redisUrl);
  adminToken = (await signUp(ADMIN_EMAIL)).token;
}, 180_000);

afterAll(async () => {
  triton?.close();
  redis?.disconnect();
  if (restartedBilling && restartedBilling.exitCode === null) {
    const exited = new Promise((resolve) => restartedBilling!.once('exit', resolve));
    restartedBilling.kill('SIGTERM');
    await exited;
  }
  await stack?.stop();
}, 60_000);

interface Pricing {
  inputCacheHit: number;
  inputCacheMiss: number;
  output: number;
}
interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
}

const USAGE_FIELDS = 'promptTokens completionTokens totalTokens promptCacheHitTokens promptCacheMissTokens';
const COMPLETE = `mutation($i: CompletionInput!) { complete(input: $i) { id text finishReason usage { ${USAGE_FIELDS} } } }`;
const STREAM = `subscription($i: CompletionInput!) { completionStream(input: $i) { index delta finishReason usage { ${USAGE_FIELDS} } error { code } } }`;
const ACCOUNT = `query($from: DateTime!, $to: DateTime!) { me {
  balance { total granted toppedUp reserved available }
  usage(from: $from, to: $to, groupBy: MODEL) { key requests promptTokens promptCacheHitTokens promptCacheMissTokens completionTokens amount }
  invoices { month total lines { model requests promptCacheHitTokens promptCacheMissTokens completionTokens amount } }
} }`;

const MESSAGES = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name a river.' },
];
const input = (extra: Record<string, unknown> = {}) => ({ model: 'sluice-chat-batch', messages: MESSAGES, maxTokens: 2, temperature: 0.8, seed: 1, ...extra });

async function signUp(email = uniqueEmail('billing')): Promise<{ token: string; id: string }> {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "B") { token user { id } } }', { e: email });
  expect(res.errors).toBeUndefined();
  return { token: res.data!.signUp.token, id: res.data!.signUp.user.id };
}

/** A new user with exactly `micros` to spend. */
async function userWith(micros: number): Promise<{ token: string; id: string }> {
  const user = await signUp();
  const res = await gql(
    stack.gatewayUrl,
    'mutation($u: ID!, $a: Micros!, $k: String!) { topUp(userId: $u, amountMicros: $a, idempotencyKey: $k) { total } }',
    { u: user.id, a: micros, k: randomUUID() },
    bearer(adminToken),
  );
  expect(res.errors).toBeUndefined();
  expect(res.data!.topUp.total).toBe(micros);
  return user;
}

async function pricing(model: string): Promise<Pricing> {
  const res = await gql(stack.gatewayUrl, 'query($m: ID!) { model(id: $m) { pricing { inputCacheHit inputCacheMiss output } } }', { m: model });
  expect(res.errors).toBeUndefined();
  return res.data!.model.pricing;
}

/** What billing charges for one request: ceil(Σ tokens × price per 1M / 10^6). */
function charge(usage: Pick<Usage, 'promptCacheHitTokens' | 'promptCacheMissTokens' | 'completionTokens'>, price: Pricing): number {
  const microsTimesMillion = usage.promptCacheHitTokens * price.inputCacheHit + usage.promptCacheMissTokens * price.inputCacheMiss + usage.completionTokens * price.output;
  return Math.ceil(microsTimesMillion / 1_000_000);
}

/** What a request holds while it runs: every prompt byte a cache-miss token, plus maxTokens. */
function reservation(maxTokens: number, price: Pricing, messages = MESSAGES): number {
  // Both chat models declare the default chat template.
  return Math.ceil((Buffer.byteLength(renderChat(undefined, messages)) * price.inputCacheMiss + maxTokens * price.output) / 1_000_000);
}

async function account(token: string) {
  const day = 86_400_000;
  const res = await gql(stack.gatewayUrl, ACCOUNT, { from: new Date(Date.now() - day).toISOString(), to: new Date(Date.now() + day).toISOString() }, bearer(token));
  expect(res.errors).toBeUndefined();
  return res.data!.me as {
    balance: { total: number; granted: number; toppedUp: number; reserved: number; available: number };
    usage: Array<{ key: string; requests: number; promptTokens: number; promptCacheHitTokens: number; promptCacheMissTokens: number; completionTokens: number; amount: number }>;
    invoices: Array<{ month: string; total: number; lines: Array<{ model: string; requests: number; amount: number }> }>;
  };
}

/** The account once billing has settled `requests` requests and released every hold (bounded wait). */
async function settled(token: string, requests: number, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await account(token).catch(() => undefined);
    const done = now?.usage.reduce((n, b) => n + b.requests, 0) ?? -1;
    if (now && done >= requests && now.balance.reserved === 0) return now;
    if (Date.now() > deadline) throw new Error(`billing settled ${done} of ${requests} requests (reserved ${now?.balance.reserved}) within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The usage events inference published for one user, straight from billing's stream. */
async function eventsOf(userId: string): Promise<UsageEvent[]> {
  const entries = await redis.xrange(USAGE_EVENTS_STREAM, '-', '+');
  return entries.map(([, fields]) => decodeUsageEvent(fields)).filter((e) => e.userId === userId);
}

/** Prompts the gpu-server has taken for a model (one per batch row or stream). */
async function gpuRequests(model: string): Promise<number> {
  const stats = (await triton.modelStatistics(model)).model_stats[0];
  return Number(stats.inference_count);
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

it('a user who completes and streams sees the balance fall by exactly the priced usage, and usage and invoices agree', async () => {
  const price = await pricing('sluice-chat');
  const user = await userWith(5_000_000);
  const completed = await gql(stack.gatewayUrl, COMPLETE, { i: input({ model: 'sluice-chat', maxTokens: 16 }) }, bearer(user.token));
  expect(completed.errors).toBeUndefined();
  const client = wsClient(stack.gatewayUrl, user.token);
  let streamed: Usage;
  try {
    const events = await collect(client, STREAM, { i: input({ model: 'sluice-chat', maxTokens: 16, seed: 2 }) });
    const last = events[events.length - 1].data!.completionStream;
    expect(last.finishReason).toMatch(/^(STOP|LENGTH)$/);
    streamed = last.usage;
  } finally {
    await client.dispose();
  }
  const usages: Usage[] = [completed.data!.complete.usage, streamed];
  // The stream sent the same prompt again: the gpu-server reused its cached 16-token blocks (all but the last prompt token), billed at the cache-hit price.
  expect(streamed.promptCacheHitTokens).toBe(Math.floor((streamed.promptTokens - 1) / 16) * 16);
  expect(usages[0].promptCacheHitTokens).toBe(0);
  const expected = sum(usages.map((u) => charge(u, price)));

  const after = await settled(user.token, 2);
  expect(after.balance).toMatchObject({ total: 5_000_000 - expected, reserved: 0, available: 5_000_000 - expected });
  expect(after.usage).toEqual([
    {
      key: 'sluice-chat',
      requests: 2,
      promptTokens: sum(usages.map((u) => u.promptTokens)),
      promptCacheHitTokens: sum(usages.map((u) => u.promptCacheHitTokens)),
      promptCacheMissTokens: sum(usages.map((u) => u.promptCacheMissTokens)),
      completionTokens: sum(usages.map((u) => u.completionTokens)),
      amount: expected,
    },
  ]);
  expect(after.invoices).toHaveLength(1);
  expect(after.invoices[0].total).toBe(expected);
  expect(after.invoices[0].lines).toEqual([expect.objectContaining({ model: 'sluice-chat', requests: 2, amount: expected })]);
  // The events carry the very numbers the client was shown.
  const events = await eventsOf(user.id);
  expect(events.map((e) => [e.promptCacheHitTokens, e.promptCacheMissTokens, e.completionTokens])).toEqual(usages.map((u) => [u.promptCacheHitTokens, u.promptCacheMissTokens, u.completionTokens]));
});

it('a stream the client cancels is billed for the tokens it was sent, not for its reservation', async () => {
  const price = await pricing('sluice-chat');
  const user = await userWith(5_000_000);
  const client = wsClient(stack.gatewayUrl, user.token);
  try {
    const events = await collect(client, STREAM, { i: input({ model: 'sluice-chat', maxTokens: 900 }) }, 1);
    expect(events[0].data!.completionStream.finishReason).toBeNull();
  } finally {
    await client.dispose();
  }
  const after = await settled(user.token, 1);
  const [event] = await eventsOf(user.id);
  expect(event.finishReason).toBe('CANCELLED');
  expect(event.completionTokens).toBeGreaterThan(0);
  expect(event.completionTokens).toBeLessThan(900);
  const billed = charge(event, price);
  expect(after.balance.total).toBe(5_000_000 - billed);
  expect(billed).toBeLessThan(reservation(900, price));
  expect(after.usage[0]).toMatchObject({ requests: 1, completionTokens: event.completionTokens, amount: billed });
});

it('refuses a stream at subscribe time with INSUFFICIENT_BALANCE, before any chunk and without calling the gpu-server', async () => {
  const user = await userWith(1);
  const before = await gpuRequests('sluice-chat');
  const client = wsClient(stack.gatewayUrl, user.token);
  try {
    const events = await collect(client, STREAM, { i: input({ model: 'sluice-chat', maxTokens: 64 }) });
    expect(events).toHaveLength(1);
    expect(events[0].errors?.[0].extensions).toMatchObject({ code: 'INSUFFICIENT_BALANCE', available: 1 });
  } finally {
    await client.dispose();
  }
  expect(await gpuRequests('sluice-chat')).toBe(before);
  expect((await account(user.token)).balance).toMatchObject({ total: 1, reserved: 0 });
});

it('a key with a small daily cap never spends past it, however many requests run at once', async () => {
  const price = await pricing('sluice-chat-batch');
  const user = await userWith(5_000_000);
  const created = await gql(stack.gatewayUrl, 'mutation { createApiKey(name: "capped", scopes: [INFERENCE_INVOKE]) { secret apiKey { id } } }', {}, bearer(user.token));
  expect(created.errors).toBeUndefined();
  const { secret, apiKey } = created.data!.createApiKey;
  // Room for one request's hold at a time, so concurrent requests must be refused.
  const cap = 2 * reservation(2, price) - 1;
  const limited = await gql(stack.gatewayUrl, 'mutation($k: ID!, $d: Micros) { setApiKeySpendLimit(apiKeyId: $k, dailyMicros: $d) { daily } }', { k: apiKey.id, d: cap }, bearer(user.token));
  expect(limited.errors).toBeUndefined();

  const before = await gpuRequests('sluice-chat-batch');
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => gql(stack.gatewayUrl, COMPLETE, { i: input({ seed: i }) }, bearer(secret))));
  const served = results.filter((r) => !r.errors).map((r) => r.data!.complete.usage as Usage);
  const refused = results.filter((r) => r.errors);
  expect(served.length).toBeGreaterThan(0);
  expect(refused.length).toBeGreaterThan(0);
  for (const r of refused) expect(r.errors![0].extensions).toMatchObject({ code: 'SPEND_LIMIT_EXCEEDED', period: 'DAY', cap });
  expect(await gpuRequests('sluice-chat-batch')).toBe(before + served.length);

  const spent = sum(served.map((u) => charge(u, price)));
  const after = await settled(user.token, served.length);
  expect(after.balance.total).toBe(5_000_000 - spent);
  const limits = await gql(stack.gatewayUrl, '{ me { spendLimits { apiKeyId daily spentToday reserved } } }', {}, bearer(user.token));
  expect(limits.data!.me.spendLimits).toEqual([{ apiKeyId: apiKey.id, daily: cap, spentToday: spent, reserved: 0 }]);
  expect(spent).toBeLessThanOrEqual(cap);
});

it('1,000 concurrent completions against a balance that allows only some: never below zero, each charged once or refused, charges add up exactly', async () => {
  const price = await pricing('sluice-chat-batch');
  // Every served request costs at least 1 micro, so 600 cannot pay for 1,000.
  const user = await userWith(600);
  const before = await gpuRequests('sluice-chat-batch');
  let running = true;
  const lowest = { total: Infinity, available: Infinity };
  const watcher = (async () => {
    while (running) {
      const { balance } = await account(user.token);
      lowest.total = Math.min(lowest.total, balance.total);
      lowest.available = Math.min(lowest.available, balance.available);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  const results = await Promise.all(Array.from({ length: 1_000 }, (_, i) => gql(stack.gatewayUrl, COMPLETE, { i: input({ seed: i }) }, bearer(user.token))));
  running = false;
  await watcher;

  const served = results.filter((r) => !r.errors).map((r) => r.data!.complete.usage as Usage);
  const refused = results.filter((r) => r.errors);
  for (const r of refused) expect(r.errors![0].extensions).toMatchObject({ code: 'INSUFFICIENT_BALANCE' });
  expect(served.length).toBeGreaterThan(0);
  expect(refused.length).toBeGreaterThan(0);
  expect(served.length + refused.length).toBe(1_000);
  expect(await gpuRequests('sluice-chat-batch')).toBe(before + served.length);

  const after = await settled(user.token, served.length, 30_000);
  const charges = sum(served.map((u) => charge(u, price)));
  expect(lowest.total).toBeGreaterThanOrEqual(0);
  expect(lowest.available).toBeGreaterThanOrEqual(0);
  expect(after.balance.total).toBeGreaterThanOrEqual(0);
  expect(600 - after.balance.total).toBe(charges);
  expect(after.usage).toEqual([expect.objectContaining({ key: 'sluice-chat-batch', requests: served.length, amount: charges })]);
  expect(after.invoices[0].total).toBe(charges);
  const events = await eventsOf(user.id);
  expect(events).toHaveLength(served.length);
  expect(new Set(events.map((e) => e.reservationId)).size).toBe(served.length);
}, 90_000);

it('billing killed mid-load and started again settles every usage event exactly once', async () => {
  const price = await pricing('sluice-chat-batch');
  const streamPrice = await pricing('sluice-chat');
  const user = await userWith(5_000_000);
  const before = await gpuRequests('sluice-chat-batch');
  let answered = 0;
  const requests = Array.from({ length: 300 }, (_, i) => gql(stack.gatewayUrl, COMPLETE, { i: input({ seed: i }) }, bearer(user.token)).finally(() => void answered++));
  // Long streams that hold their reservations across the kill, so some events
  // are certainly published while billing is down (short unary requests may all
  // be either done or not yet reserved at the moment of the kill).
  const client = wsClient(stack.gatewayUrl, user.token);
  const streams = Array.from({ length: 3 }, (_, i) => longStream(client, input({ model: 'sluice-chat', maxTokens: 900, seed: 100 + i })));
  let killedAt = 0;
  try {
    await Promise.all(streams.map((s) => s.started));
    while (answered < 50) await new Promise((r) => setTimeout(r, 5));
    await stack.kill('billing', 'SIGKILL');
    killedAt = Date.now();
  } finally {
    await Promise.all(streams.map((s) => s.ended.catch(() => undefined)));
    await client.dispose();
  }
  const results = await Promise.all(requests);
  const ended = await Promise.all(streams.map((s) => s.ended));
  restartedBilling = await startBilling();

  const served = results.filter((r) => !r.errors).map((r) => r.data!.complete.usage as Usage);
  const refused = results.filter((r) => r.errors);
  // With billing down nothing is reserved, so nothing runs.
  for (const r of refused) expect(r.errors![0].extensions?.code).toBe('SERVICE_UNAVAILABLE');
  expect(await gpuRequests('sluice-chat-batch')).toBe(before + served.length);
  // Streams reserved before the kill kept running and ended normally after it.
  for (const s of ended) expect(s.finishReason).toMatch(/^(STOP|LENGTH)$/);
  expect(ended.filter((s) => s.at > killedAt).length).toBeGreaterThan(0);

  const charges = sum(served.map((u) => charge(u, price)));
  const streamCharges = sum(ended.map((s) => charge(s.usage, streamPrice)));
  const deadline = Date.now() + 30_000;
  let now = await account(user.token);
  while (sum(now.usage.map((b) => b.requests)) < served.length + ended.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    now = await account(user.token);
  }
  // Holds of reservations cut off by the kill wait for their expiry; the money moved is what matters.
  expect(now.usage).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ key: 'sluice-chat-batch', requests: served.length, amount: charges }),
      expect.objectContaining({ key: 'sluice-chat', requests: ended.length, amount: streamCharges }),
    ]),
  );
  expect(now.usage).toHaveLength(2);
  expect(now.balance.total).toBe(5_000_000 - charges - streamCharges);
  expect(await eventsOf(user.id)).toHaveLength(served.length + ended.length);
}, 90_000);

/** A completion stream: `started` once its first chunk arrives, `ended` with its last chunk and when it came. */
function longStream(client: ReturnType<typeof wsClient>, variables: Record<string, unknown>) {
  let markStarted!: () => void;
  const started = new Promise<void>((resolve) => (markStarted = resolve));
  const ended = (async () => {
    let last: { finishReason: string | null; usage: Usage } | undefined;
    for await (const event of client.iterate<{ completionStream: { finishReason: string | null; usage: Usage } }>({ query: STREAM, variables: { i: variables } })) {
      if (event.errors) throw new Error(`stream failed: ${JSON.stringify(event.errors)}`);
      markStarted();
      last = event.data!.completionStream;
    }
    if (!last?.finishReason) throw new Error('stream ended without a final chunk');
    return { finishReason: last.finishReason, usage: last.usage, at: Date.now() };
  })();
  // A stream that fails before its first chunk must not leave `started` pending forever.
  ended.catch(() => markStarted());
  return { started, ended };
}

/** Starts billing again on its port, as the stack started it, and waits until it is healthy. */
async function startBilling(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'subgraphs/billing/main.ts')], {
    cwd: ROOT,
    env: serviceEnv('billing', { ...process.env, ...stack.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => stack.logs.push(`[billing again] ${d}`));
  child.stderr?.on('data', (d: Buffer) => stack.logs.push(`[billing again] ${d}`));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const healthy = await fetch(`http://127.0.0.1:${stack.ports.billing}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) return child;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`billing did not start again:\n${stack.logs.filter((l) => l.startsWith('[billing')).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
