/**
 * A completion whose inference process is lost under it (SIGKILL mid-request)
 * is sent again with its idempotency key, as a client that got no usable
 * answer does: it is answered once the lost process's lease on the key
 * lapses, and billed once (under the usage event id of the key's run, the
 * same the lost attempt would have published); after
 * that, the same key replays the answer. The whole stack runs as processes,
 * as in production. (Retries while the first still runs, on the OpenAI door:
 * test/openai.e2e.test.ts; the store's rules: idempotent-completions.test.ts.)
 */
import { createHash, randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM } from '../lib/usage-events';
import { usageEventIdOf } from '../subgraphs/inference/completions/idempotent-completions';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { waitFor } from './support/wait-for';

const LEASE_MS = 1_500;
const COMPLETE = 'mutation($i: CompletionInput!, $k: String) { complete(input: $i, idempotencyKey: $k) { id text finishReason usage { completionTokens } } }';

let stack: TestStack;
let redis: Redis;

beforeAll(async () => {
  stack = await startTestStack({ INFERENCE_IDEMPOTENCY_LEASE_MS: String(LEASE_MS), GATEWAY_SUBGRAPH_RETRY_BACKOFF_MS: '50' });
  redis = new Redis(stack.redisUrl);
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
}, 60_000);

it('a completion lost with its inference process is answered on a retry with its key, billed once, then replayed', async () => {
  const signUp = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "I") { token user { id } } }', {
    e: uniqueEmail('idempotent'),
  });
  const { token, user } = signUp.data!.signUp as { token: string; user: { id: string } };
  const key = randomUUID();
  // Long enough to be mid-generation at the kill.
  const variables = { i: { model: 'sluice-chat', messages: [{ role: 'user', content: 'Describe a long river.' }], maxTokens: 900, temperature: 0.8 }, k: key };

  const lost = gql(stack.gatewayUrl, COMPLETE, variables, bearer(token));
  const record = `inference:idempotency:${user.id}:${createHash('sha256').update(key).digest('hex')}`;
  await waitFor(async () => ((await redis.exists(record)) ? true : undefined), 'the first attempt to claim its key');
  await stack.kill('inference', 'SIGKILL');
  const cut = await lost;
  expect(cut.errors?.[0]?.extensions).toMatchObject({ code: 'SUBGRAPH_UNAVAILABLE', service: 'inference' });
  await stack.restart('inference');

  // As a client does: the same request and key again, while the gateway still finds the subgraph unavailable.
  const answered = await waitFor(
    async () => {
      const res = await gql(stack.gatewayUrl, COMPLETE, variables, bearer(token));
      if (res.errors?.some((e) => e.extensions?.code === 'SUBGRAPH_UNAVAILABLE')) return undefined;
      expect(res.errors).toBeUndefined();
      return res.data!.complete as { id: string; text: string; finishReason: string; usage: { completionTokens: number } };
    },
    'the retry to be answered',
    30_000,
  );
  expect(['STOP', 'LENGTH']).toContain(answered.finishReason);

  const replayed = await gql(stack.gatewayUrl, COMPLETE, variables, bearer(token));
  expect(replayed.errors).toBeUndefined();
  expect(replayed.data!.complete).toEqual(answered);

  const day = 86_400_000;
  const around = { from: new Date(Date.now() - day).toISOString(), to: new Date(Date.now() + day).toISOString() };
  // Billed once, for the answered attempt: the lost one never published a usage event, and the replay runs nothing.
  const billed = await waitFor(async () => {
    const res = await gql(stack.gatewayUrl, 'query($from: DateTime!, $to: DateTime!) { me { usage(from: $from, to: $to, groupBy: MODEL) { requests completionTokens } } }', around, bearer(token));
    expect(res.errors).toBeUndefined();
    const buckets = (res.data?.me.usage ?? []) as Array<{ requests: number; completionTokens: number }>;
    const requests = buckets.reduce((n, b) => n + b.requests, 0);
    return requests > 0 ? { requests, completionTokens: buckets.reduce((n, b) => n + b.completionTokens, 0) } : undefined;
  }, 'billing to settle the completion');
  expect(billed).toEqual({ requests: 1, completionTokens: answered.usage.completionTokens });
  const events = (await redis.xrange(USAGE_EVENTS_STREAM, '-', '+')).map(([, fields]) => decodeUsageEvent(fields)).filter((e) => e.userId === user.id);
  expect(events).toHaveLength(1);
  // Named by the key's run, as the lost attempt's would have been: billing settles that id once, whoever publishes it.
  expect(events[0].eventId).toBe(usageEventIdOf(user.id, key, 1));
}, 120_000);
