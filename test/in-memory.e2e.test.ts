import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { IN_MEMORY_REDIS_URL } from '../lib/redis';
import { type Stack, startStack } from '../scripts/stack';
import { collect, wsClient } from './support/subscriptions';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { freeStackPorts } from './support/stack';

/**
 * The fallback `npm start` uses when there is neither REDIS_URL nor a
 * redis-server binary: every service in one process around one in-memory
 * store, still talking over real HTTP and gRPC on their own ports.
 */
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    ports: await freeStackPorts(),
    redisUrl: IN_MEMORY_REDIS_URL,
    dataDir: mkdtempSync(path.join(tmpdir(), 'sluice-mem-')),
    host: '127.0.0.1',
    env: { SLUICE_LOG_LEVEL: 'warn' },
    onLine: () => undefined,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

it('runs every service in this process and answers the federated query from one shared store', async () => {
  expect(stack.mode).toBe('in-process');
  const signUp = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "M") { token } }', { e: uniqueEmail() });
  const token = signUp.data!.signUp.token as string;
  await gql(stack.gatewayUrl, 'mutation { addDocument(title: "Kept in memory", content: "only while the process lives") { id } }', {}, bearer(token));
  const res = await gql(stack.gatewayUrl, '{ me { balance { total } documents { title } } models { id pricing { output } } embed(texts: ["a", "b"]) { index dimensions } }', {}, bearer(token));
  expect(res.errors).toBeUndefined();
  expect(res.data).toEqual({
    me: { balance: { total: 5_000_000 }, documents: [{ title: 'Kept in memory' }] },
    models: expect.arrayContaining([
      { id: 'sluice-embed', pricing: { output: 0 } },
      { id: 'sluice-chat', pricing: { output: expect.any(Number) } },
    ]),
    embed: [
      { index: 0, dimensions: 128 },
      { index: 1, dimensions: 128 },
    ],
  });
  const client = wsClient(stack.gatewayUrl, token);
  const streamed = await collect(client, 'subscription { completionStream(input: {messages: [{role: "user", content: "hi"}], maxTokens: 3}) { delta finishReason } }', {});
  await client.dispose();
  expect(streamed[streamed.length - 1].data!.completionStream.finishReason).toMatch(/^(STOP|LENGTH)$/);
});
