/**
 * Idempotent completions over a real Redis: one generation per key and
 * input, whoever retries and when, and a key freed when its runner failed or
 * died. The completions behind are a fake that counts its calls (each call
 * is one generation, billed once), so every test can say how many ran.
 */
import { randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import type Redis from 'ioredis';
import { createLogger } from '../../../lib/log';
import { UUID_PATTERN } from '../../../lib/usage-events';
import { startTestRedis, type TestRedis } from '../../../test/support/redis';
import type { Caller } from '../billing/usage-billing';
import type { CompletionInput } from './completion-request';
import type { Completion } from './completions';
import { IdempotencyStore } from './idempotency-store';
import { fingerprintOf, IdempotentCompletions, usageEventIdOf } from './idempotent-completions';

let testRedis: TestRedis;
let redis: Redis;

beforeAll(async () => {
  testRedis = await startTestRedis();
  redis = testRedis.connect();
});
afterAll(() => testRedis.stop());

const log = createLogger({ service: 'idempotent-completions-test' });
const input = (content = 'Hello'): CompletionInput => ({ model: 'sluice-chat', messages: [{ role: 'user', content }], maxTokens: 4, temperature: 0.8 });
const callerOf = (sub: string): Caller => ({ identity: { sub, scopes: ['inference:invoke'], iat: 0, exp: 0 }, identityHeader: 'signed' });

/** A generation that takes `ms` and, while `failures` lasts, fails. */
function generator(ms = 20, failures = 0) {
  let remainingFailures = failures;
  const calls: CompletionInput[] = [];
  /** The usage event id each run was given (undefined: a new one). */
  const eventIds: Array<string | undefined> = [];
  return {
    calls,
    eventIds,
    complete: async (caller: Caller, request: CompletionInput): Promise<Completion> => {
      calls.push(request);
      eventIds.push(caller.usageEventId);
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (remainingFailures-- > 0) throw new Error('GPU_UNAVAILABLE: the gpu-server went away');
      return {
        id: `cmpl-${randomUUID()}`,
        text: `text ${calls.length}`,
        finishReason: 'STOP',
        usage: { promptTokens: 3, completionTokens: 4, totalTokens: 7, promptCacheHitTokens: 0, promptCacheMissTokens: 3 },
        model: { id: 'sluice-chat', version: '1' } as Completion['model'],
        cacheStatus: 'BYPASS',
      };
    },
  };
}

function setUp(options: { ms?: number; failures?: number; leaseMs?: number; waitMs?: number } = {}) {
  const generated = generator(options.ms, options.failures);
  const store = new IdempotencyStore(redis, { ttlMs: 60_000, leaseMs: options.leaseMs ?? 2_000 });
  return { generated, store, completions: new IdempotentCompletions(generated, store, { waitMs: options.waitMs ?? 5_000, log }) };
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: unknown; message: string; extensions: Record<string, unknown> }> {
  const error = (await promise.then(
    () => {
      throw new Error('expected the completion to be refused, but it was answered');
    },
    (e: unknown) => e,
  )) as GraphQLError;
  return { code: error.extensions?.code, message: error.message, extensions: error.extensions };
}

test('a retry with the same key and input gets the first completion, generated once', async () => {
  const { generated, completions } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  const first = await completions.complete(caller, input(), key);
  const again = await completions.complete(caller, input(), key);
  expect(again).toEqual(first);
  expect(generated.calls).toHaveLength(1);
  // Null fields and key order do not make it another request.
  const reordered = { temperature: 0.8, seed: null, maxTokens: 4, messages: [{ content: 'Hello', role: 'user' }], model: 'sluice-chat' } as CompletionInput;
  expect(await completions.complete(caller, reordered, key)).toEqual(first);
  expect(generated.calls).toHaveLength(1);
});

test('requests without a key, or with a new key, each run', async () => {
  const { generated, completions } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const [a, b] = [await completions.complete(caller, input()), await completions.complete(caller, input())];
  const [c, d] = [await completions.complete(caller, input(), randomUUID()), await completions.complete(caller, input(), randomUUID())];
  expect(new Set([a.id, b.id, c.id, d.id]).size).toBe(4);
  expect(generated.calls).toHaveLength(4);
});

test('keys belong to their user: the same key from another user is another request', async () => {
  const { generated, completions } = setUp();
  const key = randomUUID();
  const mine = await completions.complete(callerOf(`user-${randomUUID()}`), input(), key);
  const theirs = await completions.complete(callerOf(`user-${randomUUID()}`), input(), key);
  expect(theirs.id).not.toBe(mine.id);
  expect(generated.calls).toHaveLength(2);
});

test('the same key with another input is refused, naming the key', async () => {
  const { generated, completions } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await completions.complete(caller, input('Hello'), key);
  const refused = await codeOf(completions.complete(caller, input('Goodbye'), key));
  expect(refused.code).toBe('BAD_USER_INPUT');
  expect(refused.extensions.field).toBe('idempotencyKey');
  expect(refused.message).toContain(`idempotencyKey "${key}" was first used for a different request`);
  expect(generated.calls).toHaveLength(1);
});

test('a key of the wrong length is refused before anything runs', async () => {
  const { generated, completions } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  for (const key of ['', 'k'.repeat(256)]) {
    const refused = await codeOf(completions.complete(caller, input(), key));
    expect(refused).toMatchObject({ code: 'BAD_USER_INPUT', message: `idempotencyKey expects 1 to 255 characters, but got ${key.length}` });
  }
  expect(generated.calls).toHaveLength(0);
});

test('retries sent while the first runs wait for it, on any replica: one generation, one answer', async () => {
  const { generated, store } = setUp({ ms: 300 });
  // Three replicas of the subgraph: each its own IdempotentCompletions on the same Redis.
  const replicas = [0, 1, 2].map(() => new IdempotentCompletions(generated, store, { waitMs: 5_000, log }));
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  const answers = await Promise.all(replicas.flatMap((replica) => [replica.complete(caller, input(), key), replica.complete(caller, input(), key)]));
  expect(generated.calls).toHaveLength(1);
  expect(new Set(answers.map((a) => a.id)).size).toBe(1);
});

test('a request that failed frees its key: the retry runs again', async () => {
  const { generated, completions } = setUp({ failures: 1 });
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await expect(completions.complete(caller, input(), key)).rejects.toThrow('GPU_UNAVAILABLE');
  const retried = await completions.complete(caller, input(), key);
  expect(retried.text).toBe('text 2');
  expect(generated.calls).toHaveLength(2);
  // The failed run billed what it produced under its own event; the retry is the key's next run, billed on its own.
  expect(generated.eventIds).toEqual([usageEventIdOf(caller.identity.sub!, key, 1), usageEventIdOf(caller.identity.sub!, key, 2)]);
});

test('a runner that died leaves its key when its lease lapses, and the waiting retry runs the request', async () => {
  const { generated, store, completions } = setUp({ leaseMs: 400 });
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  // A replica claimed the key as `complete` does, then died: nothing renews its lease, nothing finishes it.
  expect(await store.claim(caller.identity.sub!, key, fingerprintOf(input()), randomUUID())).toMatchObject({ kind: 'run' });
  const started = Date.now();
  const answer = await completions.complete(caller, input(), key);
  expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  expect(answer.text).toBe('text 1');
  expect(generated.calls).toHaveLength(1);
  // The same run as the dead one's: had it published its usage event, billing would settle this one's as that one.
  expect(generated.eventIds).toEqual([usageEventIdOf(caller.identity.sub!, key, 1)]);
});

test('a live runner that lost its lease and the one that took it over run under one usage event id: billed once', async () => {
  const { generated, store } = setUp({ ms: 1_000, leaseMs: 300 });
  // Replica A is cut off from Redis after its claim: it cannot renew, and runs on.
  const cutOff = Object.assign(Object.create(store) as IdempotencyStore, { renew: async () => Promise.reject(new Error('connection lost')) });
  const a = new IdempotentCompletions(generated, cutOff, { waitMs: 5_000, log });
  const b = new IdempotentCompletions(generated, store, { waitMs: 5_000, log });
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  const first = a.complete(caller, input(), key);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const second = await b.complete(caller, input(), key);
  await first;
  expect(generated.calls).toHaveLength(2);
  expect(generated.eventIds).toEqual([usageEventIdOf(caller.identity.sub!, key, 1), usageEventIdOf(caller.identity.sub!, key, 1)]);
  expect(second.text).toBe('text 2');
});

test('usage event ids are UUIDs, one per user, key and run', () => {
  const id = usageEventIdOf('user-1', 'key-1', 1);
  expect(id).toMatch(UUID_PATTERN);
  expect(usageEventIdOf('user-1', 'key-1', 1)).toBe(id);
  expect(new Set([id, usageEventIdOf('user-2', 'key-1', 1), usageEventIdOf('user-1', 'key-2', 1), usageEventIdOf('user-1', 'key-1', 2)]).size).toBe(4);
});

test('a live runner keeps its key past its first lease by renewing it', async () => {
  const { generated, store } = setUp({ ms: 1_000, leaseMs: 300 });
  const replicas = [0, 1].map(() => new IdempotentCompletions(generated, store, { waitMs: 5_000, log }));
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  const first = replicas[0].complete(caller, input(), key);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const retry = await replicas[1].complete(caller, input(), key);
  expect(retry).toEqual(await first);
  expect(generated.calls).toHaveLength(1);
});

test('a retry that waited its longest for a running first gets CONFLICT with a retry hint', async () => {
  const { generated, store } = setUp({ ms: 2_000 });
  const patient = new IdempotentCompletions(generated, store, { waitMs: 5_000, log });
  const hurried = new IdempotentCompletions(generated, store, { waitMs: 200, log });
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  const first = patient.complete(caller, input(), key);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const refused = await codeOf(hurried.complete(caller, input(), key));
  expect(refused.code).toBe('CONFLICT');
  expect(refused.extensions).toMatchObject({ field: 'idempotencyKey', retryAfter: expect.any(Number) });
  expect(refused.message).toContain('is still running after 200 ms of waiting for it');
  await first;
  expect(generated.calls).toHaveLength(1);
});
