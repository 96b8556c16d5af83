/**
 * Completions end to end (issue 4): through the gateway, over HTTP, graphql-ws
 * and multipart HTTP, down to the gpu-server's text-generation models, with
 * the whole stack as separate processes.
 */
import { startGpuServer, type GpuServer } from '../gpu-server/server';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { collect, readMultipart, wsClient } from './support/subscriptions';
import path from 'node:path';

let stack: TestStack;
let token: string;
let triton: TritonClient;

beforeAll(async () => {
  // Model changes (unload/load) must show within the test, not after the 5 s catalog cache.
  stack = await startTestStack({ INFERENCE_MODEL_CACHE_MS: '100', GATEWAY_SUBSCRIPTIONS_PER_CONNECTION: '60', GATEWAY_SUBSCRIPTIONS_PER_USER: '200', INFERENCE_GPU_PROBE_MS: '200' });
  triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 10_000);
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "C") { token } }', { e: uniqueEmail('cmpl') });
  token = res.data!.signUp.token;
}, 180_000);

afterAll(async () => {
  triton?.close();
  await stack?.stop();
}, 60_000);

const STREAM = `subscription($i: CompletionInput!) {
  completionStream(input: $i) { id index delta finishReason usage { promptTokens completionTokens totalTokens } error { code message } model { id pricing { output } } }
}`;
const COMPLETE = `mutation($i: CompletionInput!) {
  complete(input: $i) { id text finishReason usage { promptTokens completionTokens totalTokens } model { id decoupled pricing { output } } }
}`;
const input = (extra: Record<string, unknown> = {}) => ({
  model: 'sluice-chat',
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Name a river.' },
  ],
  maxTokens: 16,
  temperature: 0.8,
  seed: 42,
  ...extra,
});

async function streamStatistics(model: string) {
  const stats = (await triton.modelStatistics(model)).model_stats[0];
  const responses = Object.values(stats.response_stats ?? {});
  return {
    cancelled: responses.reduce((n, r) => n + Number(r.cancel?.count ?? 0), 0),
    requests: Number(stats.inference_stats!.success!.count) + Number(stats.inference_stats!.fail!.count),
  };
}

describe('complete', () => {
  it('answers with text, finish reason, the server-counted usage and the Model with fields from billing', async () => {
    const res = await gql(stack.gatewayUrl, COMPLETE, { i: input() }, bearer(token));
    expect(res.errors).toBeUndefined();
    const c = res.data!.complete;
    expect(c.text.length).toBeGreaterThan(0);
    expect(c.finishReason).toMatch(/^(STOP|LENGTH)$/);
    expect(c.usage.promptTokens).toBeGreaterThan(5);
    expect(c.usage.completionTokens).toBeGreaterThan(0);
    expect(c.usage.completionTokens).toBeLessThanOrEqual(16);
    expect(c.usage.totalTokens).toBe(c.usage.promptTokens + c.usage.completionTokens);
    expect(c.model).toMatchObject({ id: 'sluice-chat', decoupled: true });
    expect(c.model.pricing.output).toBeGreaterThan(0);
  });

  it('coalesces concurrent requests to a batching model into few ModelInfer executions', async () => {
    const before = (await triton.modelStatistics('sluice-chat-batch')).model_stats[0];
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => gql(stack.gatewayUrl, COMPLETE, { i: input({ model: 'sluice-chat-batch', seed: i, maxTokens: 4 }) }, bearer(token))));
    for (const r of results) expect(r.errors).toBeUndefined();
    const after = (await triton.modelStatistics('sluice-chat-batch')).model_stats[0];
    expect(Number(after.inference_count) - Number(before.inference_count)).toBe(16);
    expect(Number(after.execution_count) - Number(before.execution_count)).toBeLessThan(16);
  });

  it.each([
    [{ model: 'no-such-model' }, 'MODEL_NOT_FOUND', /no-such-model/],
    [{ messages: [] }, 'BAD_USER_INPUT', /input\.messages expects 1 to 256 messages, but got 0/],
    [{ messages: [{ role: 'robot', content: 'hi' }] }, 'BAD_USER_INPUT', /input\.messages\[0\]\.role expects one of system, user, assistant, but got "robot"/],
    [{ maxTokens: 0 }, 'BAD_USER_INPUT', /input\.maxTokens expects an integer of at least 1, but got 0/],
    [{ maxTokens: 100_000 }, 'BAD_USER_INPUT', /input\.maxTokens expects at most \d+ \(the context length of sluice-chat\), but got 100000/],
    [{ temperature: 3 }, 'BAD_USER_INPUT', /input\.temperature expects a number from 0 to 2, but got 3/],
    [{ topP: 0 }, 'BAD_USER_INPUT', /input\.topP expects a number greater than 0 and at most 1, but got 0/],
    [{ model: 'sluice-embed' }, 'BAD_USER_INPUT', /expects a TEXT_GENERATION model, but "sluice-embed" is EMBEDDING/],
  ])('refuses %j before calling the GPU tier with %s', async (change, code, message) => {
    const before = await streamStatistics('sluice-chat');
    const res = await gql(stack.gatewayUrl, COMPLETE, { i: input(change) }, bearer(token));
    expect(res.errors?.[0].extensions?.code).toBe(code);
    expect(res.errors?.[0].message).toMatch(message);
    expect((await streamStatistics('sluice-chat')).requests).toBe(before.requests);
  });

  it('requires a signed-in caller', async () => {
    const res = await gql(stack.gatewayUrl, COMPLETE, { i: input() });
    expect(res.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('says MODEL_NOT_READY for a model the GPU tier has unloaded, and serves it again once loaded', async () => {
    await triton.repositoryModelUnload('sluice-chat-batch');
    try {
      await new Promise((r) => setTimeout(r, 300));
      const res = await gql(stack.gatewayUrl, COMPLETE, { i: input({ model: 'sluice-chat-batch' }) }, bearer(token));
      expect(res.errors?.[0].extensions?.code).toBe('MODEL_NOT_READY');
      expect(res.errors?.[0].message).toMatch(/sluice-chat-batch/);
    } finally {
      await triton.repositoryModelLoad('sluice-chat-batch');
    }
    await new Promise((r) => setTimeout(r, 300));
    const again = await gql(stack.gatewayUrl, COMPLETE, { i: input({ model: 'sluice-chat-batch', maxTokens: 2 }) }, bearer(token));
    expect(again.errors).toBeUndefined();
  });
});

describe('a prompt longer than the model takes', () => {
  it("is the caller's error, BAD_USER_INPUT naming the context length, whole or streamed", async () => {
    const long = input({ model: 'sluice-chat', messages: [{ role: 'user', content: 'word '.repeat(1100) }], maxTokens: 4 });
    const whole = await gql(stack.gatewayUrl, COMPLETE, { i: long }, bearer(token));
    expect(whole.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(whole.errors?.[0].message).toMatch(/context length is 1024/);
    const client = wsClient(stack.gatewayUrl, token);
    const events = await collect(client, STREAM, { i: long });
    await client.dispose();
    expect(events[events.length - 1].data!.completionStream).toMatchObject({ finishReason: 'ERROR', error: { code: 'BAD_USER_INPUT' } });
  });
});

describe('the response cache', () => {
  it('answers a repeatable request the caller opts into from the cache: identical text, no gpu-server call, shown as HIT', async () => {
    const request = { i: input({ model: 'sluice-chat-batch', temperature: 0, seed: null, cache: true, messages: [{ role: 'user', content: `Name a lake ${Date.now()}` }] }) };
    const query = 'mutation($i: CompletionInput!) { complete(input: $i) { text cacheStatus usage { promptCacheHitTokens completionTokens } } }';
    const first = await gql(stack.gatewayUrl, query, request, bearer(token));
    expect(first.data!.complete.cacheStatus).toBe('MISS');
    const before = await streamStatistics('sluice-chat-batch');
    const second = await gql(stack.gatewayUrl, query, request, bearer(token));
    expect(second.data!.complete).toMatchObject({ text: first.data!.complete.text, cacheStatus: 'HIT', usage: { completionTokens: 0 } });
    expect(await streamStatistics('sluice-chat-batch')).toEqual(before);
  });
});

describe('completionStream over graphql-ws through the gateway', () => {
  it('streams every delta in order, ends with finishReason and usage, and the deltas equal complete’s text for the same seed', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    try {
      const events = await collect(client, STREAM, { i: input() });
      expect(events.every((e) => !e.errors)).toBe(true);
      const chunks = events.map((e) => e.data!.completionStream);
      expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
      expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
      // every event carries the field billing owns: the subscription spans two subgraphs
      for (const c of chunks) expect(c.model).toEqual({ id: 'sluice-chat', pricing: { output: expect.any(Number) } });
      for (const c of chunks.slice(0, -1)) expect(c.finishReason).toBeNull();
      const last = chunks[chunks.length - 1];
      expect(last.finishReason).toMatch(/^(STOP|LENGTH)$/);
      expect(last.usage.completionTokens).toBeGreaterThan(0);
      const whole = await gql(stack.gatewayUrl, COMPLETE, { i: input() }, bearer(token));
      expect(chunks.map((c) => c.delta).join('')).toBe(whole.data!.complete.text);
      expect(last.usage).toEqual(whole.data!.complete.usage);
    } finally {
      await client.dispose();
    }
  });

  it('serves 50 concurrent streams on one connection, each complete and matching its seed', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    try {
      const seeds = Array.from({ length: 50 }, (_, i) => i % 5);
      const results = await Promise.all(seeds.map((seed) => collect(client, STREAM, { i: input({ seed, maxTokens: 8 }) })));
      const texts = new Map<number, string>();
      results.forEach((events, i) => {
        const chunks = events.map((e) => e.data!.completionStream);
        expect(chunks[chunks.length - 1].finishReason).toMatch(/^(STOP|LENGTH)$/);
        const text = chunks.map((c) => c.delta).join('');
        const seen = texts.get(seeds[i]);
        if (seen === undefined) texts.set(seeds[i], text);
        else expect(text).toBe(seen);
      });
    } finally {
      await client.dispose();
    }
  });

  it('unsubscribing mid-stream cancels the generation on the gpu-server', async () => {
    const before = await streamStatistics('sluice-chat');
    const client = wsClient(stack.gatewayUrl, token);
    try {
      const events = await collect(client, STREAM, { i: input({ maxTokens: 500 }) }, 3);
      expect(events).toHaveLength(3);
    } finally {
      await client.dispose();
    }
    await waitFor(async () => (await streamStatistics('sluice-chat')).cancelled > before.cancelled);
  });

  it('refuses an anonymous stream with UNAUTHENTICATED and a bad token at connection_init with close code 4401', async () => {
    const anonymous = wsClient(stack.gatewayUrl);
    try {
      const events = await collect(anonymous, STREAM, { i: input() });
      expect(events[0].errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      await anonymous.dispose();
    }
    const forged = wsClient(stack.gatewayUrl, 'not-a-token');
    await expect(collect(forged, STREAM, { i: input() })).rejects.toMatchObject({ code: 4401 });
    await forged.dispose();
  });

  it('refuses a subscription past the per-connection limit with RATE_LIMITED, keeping the live ones, and admits again once one ends', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    try {
      // Long enough to be live together (60 × 200 tokens share the GPU), read to the end.
      const live = Array.from({ length: 60 }, () => collect(client, STREAM, { i: input({ maxTokens: 200 }) }));
      await new Promise((r) => setTimeout(r, 200));
      const refused = await collect(client, STREAM, { i: input() });
      expect(refused[0].errors?.[0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 60, scope: 'connection' });
      for (const events of await Promise.all(live)) expect(events[events.length - 1].data!.completionStream.finishReason).toMatch(/^(STOP|LENGTH)$/);
      const admitted = await collect(client, STREAM, { i: input({ maxTokens: 2 }) });
      expect(admitted[admitted.length - 1].data!.completionStream.finishReason).toMatch(/^(STOP|LENGTH)$/);
    } finally {
      await client.dispose();
    }
  });

  it('reports validation errors of the operation itself', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    try {
      const events = await collect(client, 'subscription { completionStream(input: {messages: []}) { nope } }', {});
      expect(events[0].errors?.[0].extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    } finally {
      await client.dispose();
    }
  });
});

describe('completionStream over multipart HTTP', () => {
  it('streams parts with payloads and heartbeats to a plain HTTP client, closed by the final boundary', async () => {
    const response = await fetch(stack.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0", application/json', ...bearer(token) },
      body: JSON.stringify({ query: STREAM, variables: { i: input() } }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^multipart\/mixed; boundary="graphql"; subscriptionSpec="1.0"/);
    const parts = await readMultipart<{ completionStream: { delta: string; finishReason: string | null; model: { pricing: { output: number } } } }>(response);
    expect(parts[0]).toEqual({});
    const chunks = parts.filter((p) => p.payload).map((p) => p.payload!.data!.completionStream);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[chunks.length - 1].finishReason).toMatch(/^(STOP|LENGTH)$/);
    for (const c of chunks) expect(c.model.pricing.output).toEqual(expect.any(Number));
    const ws = wsClient(stack.gatewayUrl, token);
    const events = await collect(ws, STREAM, { i: input() });
    await ws.dispose();
    expect(chunks.map((c) => c.delta).join('')).toBe(events.map((e) => e.data!.completionStream.delta).join(''));
  });
});

describe('when the gpu-server dies mid-stream', () => {
  let replacement: GpuServer | undefined;
  afterAll(async () => {
    await replacement?.stop();
  });

  it('every live stream ends with an ERROR chunk, and the shared stream reconnects to the restarted server', async () => {
    const client = wsClient(stack.gatewayUrl, token);
    try {
      const streams = Array.from({ length: 5 }, () => collect(client, STREAM, { i: input({ maxTokens: 1000 }) }));
      await new Promise((r) => setTimeout(r, 500));
      await stack.kill('gpu-server', 'SIGKILL');
      for (const events of await Promise.all(streams)) {
        const last = events[events.length - 1].data!.completionStream;
        expect(last.finishReason).toBe('ERROR');
        expect(last.error.code).toBe('GPU_UNAVAILABLE');
      }
      replacement = await startGpuServer({
        repository: path.resolve('gpu-server/model_repository'),
        host: '127.0.0.1',
        grpcPort: stack.ports.gpuGrpc,
        httpPort: 0,
        metricsPort: 0,
      });
      await waitFor(async () => {
        const events = await collect(client, STREAM, { i: input({ maxTokens: 4 }) });
        return events[events.length - 1].data?.completionStream.finishReason !== 'ERROR';
      }, 20_000);
    } finally {
      await client.dispose();
    }
  }, 60_000);
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
