/**
 * A keyed stream outlives the processes under it: cut by a SIGKILLed
 * inference process (the gateway's SERVICE_UNAVAILABLE event) or a SIGKILLed
 * gateway (the socket closes), the client subscribes again with the key and
 * the text it has, and reads the text an uncut stream would have given — the
 * same as `complete` with the seed the stream's first run chose — billed the
 * prompt once and each completion token once over all its runs. The whole
 * stack runs as processes, as in production. (The store's and the wrapper's
 * rules: subgraphs/inference/completions/resumable-streams.test.ts.)
 */
import { createHash, randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM, type UsageEvent } from '../lib/usage-events';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { followStream } from './support/resumable-stream';
import { startTestStack, type TestStack } from './support/stack';
import { wsClient } from './support/subscriptions';
import { waitFor } from './support/wait-for';

const STREAM = `subscription($i: CompletionInput!, $k: String, $r: Int) {
  completionStream(input: $i, streamKey: $k, resumeAt: $r) { delta offset finishReason error { code message } usage { promptTokens completionTokens } }
}`;

interface Chunk {
  delta: string;
  offset: number;
  finishReason: string | null;
  error: { code: string; message: string } | null;
  usage: { promptTokens: number; completionTokens: number } | null;
}

let stack: TestStack;
let redis: Redis;

beforeAll(async () => {
  stack = await startTestStack({ GATEWAY_SUBGRAPH_RETRY_BACKOFF_MS: '50' });
  redis = new Redis(stack.redisUrl);
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
}, 60_000);

async function signUp(): Promise<{ token: string; id: string }> {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "R") { token user { id } } }', { e: uniqueEmail('resumable') });
  return { token: res.data!.signUp.token, id: res.data!.signUp.user.id };
}

/**
 * Streams a long completion with a key, runs `cut` once the client has some of its text, and follows the stream to
 * its end as a client does. Returns what the client read, the stream's seed (its record's) and the user's events.
 */
async function cutAndResume(cut: () => Promise<void>) {
  const user = await signUp();
  const key = randomUUID();
  // No seed: the stream's first run chooses one. Long enough to be mid-generation at the cut.
  const input = { model: 'sluice-chat', messages: [{ role: 'user', content: 'Describe a long river.' }], maxTokens: 600, temperature: 0.8, cache: false };
  let mid: () => void = () => undefined;
  const midStream = new Promise<void>((resolve) => (mid = resolve));
  const followed = followStream<Chunk>(
    () => wsClient(stack.gatewayUrl, user.token),
    (resumeAt) => ({ query: STREAM, variables: { i: input, k: key, r: resumeAt } }),
    'completionStream',
    { attempts: 30, pauseMs: 200, onText: (text) => text.length >= 40 && mid() },
  );
  // Once the client has some of the text, the process under it is killed.
  await midStream;
  const record = `inference:stream:${user.id}:${createHash('sha256').update(key).digest('hex')}`;
  const [result] = await Promise.all([followed, cut()]);
  const seed = Number(await redis.hget(record, 'seed'));
  const events = await waitFor(async () => {
    const all = (await redis.xrange(USAGE_EVENTS_STREAM, '-', '+')).map(([, fields]) => decodeUsageEvent(fields)).filter((e: UsageEvent) => e.userId === user.id);
    return all.length >= Number(await redis.hget(record, 'runs')) - (result.cuts[0] === 'SERVICE_UNAVAILABLE' ? 1 : 0) ? all : undefined;
  }, 'every run that ended to publish its usage event');
  return { user, input, result, seed, events };
}

/** The text `complete` gives for `input` with `seed`: the stream's, uncut. */
async function uncut(token: string, input: Record<string, unknown>, seed: number): Promise<string> {
  const res = await gql(stack.gatewayUrl, 'mutation($i: CompletionInput!) { complete(input: $i) { text } }', { i: { ...input, seed } }, bearer(token));
  expect(res.errors).toBeUndefined();
  return res.data!.complete.text;
}

function billed(events: UsageEvent[]) {
  return { promptTokens: events.reduce((n, e) => n + e.promptTokens, 0), completionTokens: events.reduce((n, e) => n + e.completionTokens, 0) };
}

it('a stream whose inference process is killed under it is resumed to the text it would have had, each token billed once', async () => {
  const { user, input, result, seed, events } = await cutAndResume(async () => {
    await stack.kill('inference', 'SIGKILL');
    await stack.restart('inference');
  });
  expect(result.failure).toBeUndefined();
  expect(result.cuts[0]).toBe('SERVICE_UNAVAILABLE');
  expect(result.resumedAt[0]).toBeGreaterThanOrEqual(40);
  expect(['STOP', 'LENGTH']).toContain(result.last?.finishReason);
  expect(result.text).toBe(await uncut(user.token, input, seed));
  // The killed run published nothing (its hold expires); the run that finished billed the whole stream.
  expect(billed(events)).toEqual({ promptTokens: result.last!.usage!.promptTokens, completionTokens: result.last!.usage!.completionTokens });
}, 180_000);

it('a stream whose gateway is killed under it is resumed on a new connection, the cut run and the resumed one billing each token once', async () => {
  const { user, input, result, seed, events } = await cutAndResume(async () => {
    await stack.kill('gateway', 'SIGKILL');
    await stack.restart('gateway');
  });
  expect(result.failure).toBeUndefined();
  expect(result.cuts[0]).toMatch(/^CLOSE_/);
  expect(result.resumedAt[0]).toBeGreaterThanOrEqual(40);
  expect(['STOP', 'LENGTH']).toContain(result.last?.finishReason);
  expect(result.text).toBe(await uncut(user.token, input, seed));
  // The cut run saw its subscriber go and billed what it had sent; the resumed run only what lay past that.
  expect(events.length).toBeGreaterThanOrEqual(2);
  expect(billed(events)).toEqual({ promptTokens: result.last!.usage!.promptTokens, completionTokens: result.last!.usage!.completionTokens });
}, 180_000);
