/**
 * Resumable streams over a real Redis: every run of a key generates with one
 * seed on one model version, refusals name what was wrong, and the runs of a
 * key are billed, together, what one run to the furthest point would be,
 * whichever run ends first and however often a settle is sent. The
 * completions behind are a fake that claims the run as Completions.stream
 * does and records what it was given.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { GraphQLError } from 'graphql';
import type Redis from 'ioredis';
import type { Usage } from '../../../lib/usage-events';
import { startTestRedis, type TestRedis } from '../../../test/support/redis';
import type { Caller } from '../billing/usage-billing';
import type { ModelInfo } from '../models/model-catalog';
import type { CompletionInput } from './completion-request';
import type { CompletionChunk, StreamRun } from './completions';
import { usageEventIdOf } from './idempotent-completions';
import { ResumableStreams } from './resumable-streams';
import { StreamRecordStore } from './stream-record-store';

let testRedis: TestRedis;
let redis: Redis;

beforeAll(async () => {
  testRedis = await startTestRedis();
  redis = testRedis.connect();
});
afterAll(() => testRedis.stop());

const input = (content = 'Hello', seed?: number): CompletionInput => ({ model: 'sluice-chat', messages: [{ role: 'user', content }], maxTokens: 4, temperature: 0.8, seed });
const callerOf = (sub: string): Caller => ({ identity: { sub, scopes: ['inference:invoke'], iat: 0, exp: 0 }, identityHeader: 'signed' });
const usage = (promptTokens: number, promptCacheHitTokens: number, completionTokens: number): Usage => ({
  promptTokens,
  promptCacheHitTokens,
  promptCacheMissTokens: promptTokens - promptCacheHitTokens,
  completionTokens,
  totalTokens: promptTokens + completionTokens,
});

interface Claimed {
  seed: number;
  caller: Caller;
  resumeAt: number | undefined;
}

/**
 * Completions whose model is at `version`: each stream claims its run, as Completions.stream does, offering the
 * input's seed or a new one each time (as Completions chooses one per request), and records what it got.
 */
function setUp(version = { value: '1' }) {
  const runs: Claimed[] = [];
  let offered = 1_000;
  const completions = {
    stream: async (caller: Caller, input: CompletionInput, run?: StreamRun): Promise<AsyncGenerator<CompletionChunk>> => {
      const claimed = run ? await run.claim({ id: 'sluice-chat', version: version.value } as ModelInfo, input.seed ?? offered++) : { seed: -1, caller };
      runs.push({ ...claimed, resumeAt: run?.resumeAt });
      return (async function* () {})();
    },
  };
  return { runs, version, streams: new ResumableStreams(completions, new StreamRecordStore(redis, 60_000)) };
}

async function refusal(promise: Promise<unknown>): Promise<{ code: unknown; message: string }> {
  const error = (await promise.then(
    () => {
      throw new Error('expected the stream to be refused, but it began');
    },
    (e: unknown) => e,
  )) as GraphQLError;
  return { code: error.extensions?.code, message: error.message };
}

test('every run of a key generates with the seed the first chose, as a run of its own with its own usage event', async () => {
  const { runs, streams } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await streams.stream(caller, input(), key);
  await streams.stream(caller, input(), key, 120);
  await streams.stream(caller, input(), key, 0);
  expect(runs.map((r) => r.resumeAt)).toEqual([0, 120, 0]);
  expect(Number.isInteger(runs[0].seed) && runs[0].seed >= 0).toBe(true);
  expect(new Set(runs.map((r) => r.seed))).toEqual(new Set([runs[0].seed]));
  const streamId = await redis.hget(`inference:stream:${caller.identity.sub}:${createHash('sha256').update(key).digest('hex')}`, 'stream');
  expect(runs.map((r) => r.caller.usageEventId)).toEqual([1, 2, 3].map((run) => usageEventIdOf(caller.identity.sub!, streamId!, run, 'stream')));
  // Not the event an idempotency key's run of the same user and key would name.
  expect(runs[0].caller.usageEventId).not.toBe(usageEventIdOf(caller.identity.sub!, key, 1));
});

test('a key used again once its record expired is another stream: its runs name events of their own, billed from nothing', async () => {
  const { runs, streams } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await streams.stream(caller, input(), key);
  await streams.stream(caller, input(), key, 2);
  expect(await runs[0].caller.billedShare!(usage(10, 0, 5))).toEqual(usage(10, 0, 5));
  await redis.del(`inference:stream:${caller.identity.sub}:${createHash('sha256').update(key).digest('hex')}`);
  await streams.stream(caller, input('Another prompt'), key);
  // Billing settles each event id once: the same id for the new stream's first run would be charged nothing.
  expect(runs[2].caller.usageEventId).not.toBe(runs[0].caller.usageEventId);
  expect(await runs[2].caller.billedShare!(usage(7, 0, 3))).toEqual(usage(7, 0, 3));
  // The old stream's second run, ending only now, has no mark left to go by: it bills what it used, and leaves the new stream's mark alone.
  expect(await runs[1].caller.billedShare!(usage(10, 0, 9))).toEqual(usage(10, 0, 9));
  await streams.stream(caller, input('Another prompt'), key, 2);
  expect(await runs[3].caller.billedShare!(usage(7, 0, 6))).toEqual(usage(0, 0, 3));
});

test("the client's seed is the stream's; without a key nothing is recorded or claimed", async () => {
  const { runs, streams } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await streams.stream(caller, input('Hi', 42), key);
  await streams.stream(caller, input('Hi', 42), key, 3);
  await streams.stream(caller, input('Hi', 42));
  expect(runs.map((r) => [r.seed, r.resumeAt])).toEqual([
    [42, 0],
    [42, 3],
    [-1, undefined],
  ]);
  expect(runs[2].caller.billedShare).toBeUndefined();
});

test('refuses, naming the argument: a resume of no stream, another input under a key, a bad key or resumeAt, resumeAt without a key', async () => {
  const { streams } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  expect(await refusal(streams.stream(caller, input(), key, 5))).toEqual({ code: 'BAD_USER_INPUT', message: expect.stringContaining('names no stream to resume') });
  await streams.stream(caller, input(), key);
  expect(await refusal(streams.stream(caller, input('Other'), key, 5))).toEqual({ code: 'BAD_USER_INPUT', message: expect.stringContaining('was first used for a different stream') });
  expect(await refusal(streams.stream(caller, input(), ''))).toEqual({ code: 'BAD_USER_INPUT', message: 'streamKey expects 1 to 255 characters, but got 0' });
  expect(await refusal(streams.stream(caller, input(), key, -1))).toEqual({ code: 'BAD_USER_INPUT', message: expect.stringMatching(/^resumeAt expects an integer of at least 0 .* but got -1$/) });
  expect(await refusal(streams.stream(caller, input(), null, 5))).toEqual({ code: 'BAD_USER_INPUT', message: expect.stringContaining('resumeAt expects a streamKey beside it') });
  // Keys are per user: another user's same key names no stream of theirs.
  expect(await refusal(streams.stream(callerOf(`user-${randomUUID()}`), input(), key, 5))).toMatchObject({ code: 'BAD_USER_INPUT' });
});

test('a resume after the model changed version is CONFLICT: its text cannot be made again', async () => {
  const { streams, version } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await streams.stream(caller, input(), key);
  version.value = '2';
  expect(await refusal(streams.stream(caller, input(), key, 10))).toEqual({
    code: 'CONFLICT',
    message: `the stream ${JSON.stringify(key)} began on version 1 of sluice-chat, which now serves version 2: its text cannot be made again, so it cannot be resumed; begin a new stream`,
  });
});

test('runs are billed, together, the prompt once and each completion token once, whichever ends first and however often a settle is sent', async () => {
  const { runs, streams } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  for (let i = 0; i < 4; i++) await streams.stream(caller, input(), key, i * 10);
  const share = (run: number, used: Usage) => runs[run].caller.billedShare!(used);

  // Run 1 was cut after 5 tokens (the server had counted the prompt: 10, 4 of them cache hits).
  expect(await share(0, usage(10, 4, 5))).toEqual(usage(10, 4, 5));
  // Run 3 resumed it and finished at 12: only the 7 tokens past the first's are its.
  expect(await share(2, usage(10, 6, 12))).toEqual(usage(0, 0, 7));
  // Sent again after a failover lost its answer: the same share, billed under the same event, once.
  expect(await share(2, usage(10, 6, 12))).toEqual(usage(0, 0, 7));
  // Run 2, cut off earlier and noticing only now (its prompt not counted yet): nothing it used is unbilled.
  expect(await share(1, usage(0, 0, 8))).toEqual(usage(0, 0, 0));
  // Run 4 resumed past the end: a client that resumes a finished stream is charged nothing more.
  expect(await share(3, usage(10, 10, 12))).toEqual(usage(0, 0, 0));
});

test('two runs ending at once bill the tokens they share once', async () => {
  const { runs, streams } = setUp();
  const caller = callerOf(`user-${randomUUID()}`);
  const key = randomUUID();
  await streams.stream(caller, input(), key);
  await streams.stream(caller, input(), key, 4);
  const shares = await Promise.all([runs[0].caller.billedShare!(usage(10, 0, 9)), runs[1].caller.billedShare!(usage(10, 0, 12))]);
  const total = shares.reduce((sum, s) => ({ prompt: sum.prompt + s.promptTokens, completion: sum.completion + s.completionTokens }), { prompt: 0, completion: 0 });
  expect(total).toEqual({ prompt: 10, completion: 12 });
});
