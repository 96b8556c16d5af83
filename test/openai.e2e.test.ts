/**
 * The OpenAI-compatible API end to end (issue 16): the official `openai`
 * client, unmodified, pointed at the gateway's /v1, against the whole stack
 * as separate processes. Every route runs through the graph, so the graph's
 * rules (API keys and their scopes, balances, rate limits, cancellation and
 * partial billing) are what the client meets.
 */
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { encode as encodeR50k } from 'gpt-tokenizer/cjs/encoding/r50k_base';
import OpenAI from 'openai';
import { decodeUsageEvent, USAGE_EVENTS_STREAM } from '../lib/usage-events';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';
import { waitFor } from './support/wait-for';
import { collect, wsClient } from './support/subscriptions';

const ADMIN_EMAIL = `openai-admin-${process.pid}-${Date.now()}@example.test`;

let stack: TestStack;
let triton: TritonClient;
let redis: Redis;
let adminToken: string;
/** A user with money and an API key that may run inference. */
let user: { id: string; token: string; key: string };
let client: OpenAI;

const openai = (apiKey: string) => new OpenAI({ baseURL: stack.gatewayUrl.replace(/\/graphql$/, '/v1'), apiKey, maxRetries: 0, timeout: 30_000 });

beforeAll(async () => {
  stack = await startTestStack({
    AUTH_ADMIN_EMAILS: ADMIN_EMAIL,
    BILLING_FREE_CREDIT_MICROS: '0',
    // Every session holds billing:read, so sessions and keys with it are unlimited; a key with knowledge:read alone gets 3 requests a minute.
    GATEWAY_RATE_LIMITS: 'billing:read:rpm=unlimited; knowledge:read:rpm=3',
  });
  triton = new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 10_000);
  redis = new Redis(stack.redisUrl);
  adminToken = (await signUp(ADMIN_EMAIL)).token;
  user = await userWith(5_000_000, ['INFERENCE_INVOKE']);
  client = openai(user.key);
}, 180_000);

afterAll(async () => {
  triton?.close();
  redis?.disconnect();
  await stack?.stop();
}, 60_000);

async function signUp(email = uniqueEmail('openai')): Promise<{ token: string; id: string }> {
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "O") { token user { id } } }', { e: email });
  expect(res.errors).toBeUndefined();
  return { token: res.data!.signUp.token, id: res.data!.signUp.user.id };
}

/** A new user with exactly `micros` to spend and an API key with `scopes`. */
async function userWith(micros: number, scopes: string[]): Promise<{ id: string; token: string; key: string }> {
  const account = await signUp();
  if (micros > 0) {
    const topUp = await gql(
      stack.gatewayUrl,
      'mutation($u: ID!, $a: Micros!, $k: String!) { topUp(userId: $u, amountMicros: $a, idempotencyKey: $k) { total } }',
      { u: account.id, a: micros, k: randomUUID() },
      bearer(adminToken),
    );
    expect(topUp.errors).toBeUndefined();
  }
  const created = await gql(stack.gatewayUrl, 'mutation($s: [Scope!]!) { createApiKey(name: "openai", scopes: $s) { secret } }', { s: scopes }, bearer(account.token));
  expect(created.errors).toBeUndefined();
  return { ...account, key: created.data!.createApiKey.secret };
}

const MESSAGES: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are terse.' },
  {
    role: 'user',
    content: [
      { type: 'text', text: 'Name ' },
      { type: 'text', text: 'a river.' },
    ],
  },
];

async function cancelledStreams(): Promise<number> {
  const stats = (await triton.modelStatistics('sluice-chat')).model_stats[0];
  return Object.values(stats.response_stats ?? {}).reduce((n, r) => n + Number(r.cancel?.count ?? 0), 0);
}

describe('chat completions', () => {
  it('answers a chat.completion with the text, finish_reason and usage with the prompt-cache split', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, max_tokens: 12, seed: 3 }).withResponse();
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(data).toMatchObject({ object: 'chat.completion', model: 'sluice-chat', choices: [{ index: 0, message: { role: 'assistant' } }] });
    expect(data.id).toMatch(/^chatcmpl-/);
    expect(data.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(data.choices[0].finish_reason);
    const usage = data.usage as OpenAI.CompletionUsage & { prompt_cache_hit_tokens: number; prompt_cache_miss_tokens: number };
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeLessThanOrEqual(12);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    expect(usage.prompt_cache_hit_tokens + usage.prompt_cache_miss_tokens).toBe(usage.prompt_tokens);
  });

  it('streams chunks exactly as OpenAI does: the role first, the text, the finish, the usage when asked', async () => {
    const stream = await client.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, max_tokens: 12, seed: 3, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks[0].choices[0]).toEqual({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
    const usageChunk = chunks[chunks.length - 1];
    expect(usageChunk.choices).toEqual([]);
    const finish = chunks[chunks.length - 2];
    expect(finish.choices[0].delta).toEqual({});
    expect(['stop', 'length']).toContain(finish.choices[0].finish_reason);
    const content = chunks.slice(1, -2);
    expect(content.length).toBeGreaterThan(0);
    for (const chunk of chunks) expect(chunk).toMatchObject({ id: chunks[0].id, object: 'chat.completion.chunk', model: 'sluice-chat' });
    for (const chunk of content) expect(chunk.choices[0]).toMatchObject({ finish_reason: null, delta: { content: expect.any(String) } });
    expect(usageChunk.usage!.completion_tokens).toBeGreaterThan(0);
    expect(usageChunk.usage!.total_tokens).toBe(usageChunk.usage!.prompt_tokens + usageChunk.usage!.completion_tokens);
  });

  it('gives the same text for the same prompt and seed over /v1 (whole and streamed), the complete mutation and completionStream', async () => {
    const messages = [{ role: 'user' as const, content: 'Describe the sea.' }];
    const input = { model: 'sluice-chat', messages, maxTokens: 16, temperature: 0.9, seed: 1234, cache: false };
    const whole = await client.chat.completions.create({ model: 'sluice-chat', messages, max_tokens: 16, temperature: 0.9, seed: 1234 });
    let streamed = '';
    for await (const chunk of await client.chat.completions.create({ model: 'sluice-chat', messages, max_tokens: 16, temperature: 0.9, seed: 1234, stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? '';
    }
    const mutation = await gql(stack.gatewayUrl, 'mutation($i: CompletionInput!) { complete(input: $i) { text } }', { i: input }, bearer(user.key));
    expect(mutation.errors).toBeUndefined();
    const ws = wsClient(stack.gatewayUrl, user.key);
    let subscription = '';
    try {
      for (const event of await collect(ws, 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', { i: input })) subscription += event.data!.completionStream.delta;
    } finally {
      await ws.dispose();
    }
    expect(whole.choices[0].message.content!.length).toBeGreaterThan(0);
    expect(streamed).toBe(whole.choices[0].message.content);
    expect(mutation.data!.complete.text).toBe(whole.choices[0].message.content);
    expect(subscription).toBe(whole.choices[0].message.content);
  });

  it('an aborted stream cancels the generation on the gpu-server and is billed for the tokens sent, not its reservation', async () => {
    const buyer = await userWith(5_000_000, ['INFERENCE_INVOKE']);
    const before = await cancelledStreams();
    const controller = new AbortController();
    const stream = await openai(buyer.key).chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, max_tokens: 900, stream: true }, { signal: controller.signal });
    let received = 0;
    let finished = false;
    // The client ends the iteration quietly once aborted.
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta.content && ++received === 3) controller.abort();
      if (chunk.choices[0]?.finish_reason) finished = true;
    }
    expect(received).toBeGreaterThanOrEqual(3);
    expect(finished).toBe(false);
    await waitFor(async () => ((await cancelledStreams()) > before ? true : undefined), 'the gpu-server to count the stream cancelled');
    const event = await waitFor(async () => {
      const entries = await redis.xrange(USAGE_EVENTS_STREAM, '-', '+');
      return entries.map(([, fields]) => decodeUsageEvent(fields)).find((e) => e.userId === buyer.id);
    }, "the stream's usage event");
    expect(event.finishReason).toBe('CANCELLED');
    expect(event.completionTokens).toBeGreaterThanOrEqual(3);
    expect(event.completionTokens).toBeLessThan(900);
    const charged = await waitFor(async () => {
      const res = await gql(stack.gatewayUrl, '{ me { balance { total reserved } } }', {}, bearer(buyer.token));
      const balance = res.data?.me.balance as { total: number; reserved: number } | undefined;
      return balance && balance.reserved === 0 && balance.total < 5_000_000 ? 5_000_000 - balance.total : undefined;
    }, 'billing to settle the stream');
    const price = (await gql(stack.gatewayUrl, '{ model(id: "sluice-chat") { pricing { output } } }')).data!.model.pricing.output as number;
    // Far less than 900 tokens' worth: only what was generated before the abort is billed.
    expect(charged).toBeLessThan(Math.ceil((900 * price) / 1_000_000));
  });
});

describe('retries with an Idempotency-Key', () => {
  it('a whole completion sent again with the same key gets the first answer, generated and billed once; another body with it is refused', async () => {
    const buyer = await userWith(5_000_000, ['INFERENCE_INVOKE']);
    const buyerClient = openai(buyer.key);
    const key = randomUUID();
    // No seed: two generations would not give the same text.
    const body = { model: 'sluice-chat', messages: MESSAGES, max_tokens: 12 };
    const generations = async () => Number((await triton.modelStatistics('sluice-chat')).model_stats[0].inference_count);
    const before = await generations();
    // Two at once (the second waits for the first), then one after it finished.
    const [first, concurrent] = await Promise.all([0, 1].map(() => buyerClient.chat.completions.create(body, { headers: { 'Idempotency-Key': key } })));
    const later = await buyerClient.chat.completions.create(body, { headers: { 'Idempotency-Key': key } });
    for (const answer of [concurrent, later]) {
      expect(answer.id).toBe(first.id);
      expect(answer.choices[0].message.content).toBe(first.choices[0].message.content);
      expect(answer.usage).toEqual(first.usage);
    }
    expect(await generations()).toBe(before + 1);
    await waitFor(async () => {
      const res = await gql(stack.gatewayUrl, '{ me { balance { total reserved } } }', {}, bearer(buyer.token));
      const balance = res.data?.me.balance as { total: number; reserved: number } | undefined;
      return balance && balance.reserved === 0 && balance.total < 5_000_000 ? true : undefined;
    }, 'billing to settle the completion');
    const events = (await redis.xrange(USAGE_EVENTS_STREAM, '-', '+')).map(([, fields]) => decodeUsageEvent(fields)).filter((e) => e.userId === buyer.id);
    expect(events).toHaveLength(1);
    expect(events[0].completionTokens).toBe(first.usage!.completion_tokens);

    const refused = await buyerClient.chat.completions.create({ ...body, max_tokens: 13 }, { headers: { 'Idempotency-Key': key } }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect(refused).toMatchObject({ status: 400, param: 'Idempotency-Key', message: expect.stringContaining('was first used for a different request') });
    expect(await generations()).toBe(before + 1);
  });
});

describe('embeddings and models', () => {
  it('embeds strings as float vectors and as base64 float32, the same numbers', async () => {
    const floats = await client.embeddings.create({ model: 'sluice-embed', input: ['a river', 'the sea'], encoding_format: 'float' });
    expect(floats).toMatchObject({
      object: 'list',
      model: 'sluice-embed',
      data: [
        { object: 'embedding', index: 0 },
        { object: 'embedding', index: 1 },
      ],
    });
    expect(floats.usage.prompt_tokens).toBeGreaterThan(0);
    const vector = floats.data[0].embedding;
    expect(vector.length).toBeGreaterThan(0);
    // The client decodes base64 into floats itself; its own default asks for base64.
    const decoded = await client.embeddings.create({ model: 'sluice-embed', input: 'a river' });
    expect(decoded.data[0].embedding).toHaveLength(vector.length);
    decoded.data[0].embedding.forEach((x, i) => expect(x).toBeCloseTo(vector[i], 6));
  });

  it('embeds token ids in the model tokenizer (r50k_base for sluice-embed) as the text they encode', async () => {
    const texts = ['a river', 'The Sea, café 日本'];
    const ids = texts.map((text) => encodeR50k(text));
    const byText = await client.embeddings.create({ model: 'sluice-embed', input: texts, encoding_format: 'float' });
    const byIds = await client.embeddings.create({ model: 'sluice-embed', input: ids, encoding_format: 'float' });
    expect(byIds.data.map((e) => e.index)).toEqual([0, 1]);
    expect(byIds.data.map((e) => e.embedding)).toEqual(byText.data.map((e) => e.embedding));
    const given = ids.flat().length;
    expect(byIds.usage).toEqual({ prompt_tokens: given, total_tokens: given });
    // One flat array is one text; the client's default asks for base64.
    const one = await client.embeddings.create({ model: 'sluice-embed', input: ids[1] });
    expect(one.data).toHaveLength(1);
    one.data[0].embedding.forEach((x, i) => expect(x).toBeCloseTo(byText.data[1].embedding[i], 6));
  });

  it('refuses ids that are not tokens, ids given to a chat model, and dimensions, with 400 naming the parameter', async () => {
    await expect(client.embeddings.create({ model: 'sluice-embed', input: [[64], [64, 7850, 50257]] })).rejects.toMatchObject({
      status: 400,
      param: 'input[1][2]',
      message: expect.stringContaining('tokens[1][2] is 50257, which is not one of its tokens'),
    });
    await expect(client.embeddings.create({ model: 'sluice-embed', input: [64, 99_999] })).rejects.toMatchObject({ status: 400, param: 'input[1]' });
    await expect(client.embeddings.create({ model: 'sluice-embed', input: [-1] })).rejects.toMatchObject({ status: 400, param: 'input[0]' });
    await expect(client.embeddings.create({ model: 'sluice-chat', input: [[64]] })).rejects.toMatchObject({ status: 400, param: 'model' });
    await expect(client.embeddings.create({ model: 'sluice-embed', input: 'x', dimensions: 8 })).rejects.toMatchObject({ status: 400, param: 'dimensions', code: 'unsupported_parameter' });
  });

  it('embed takes exactly one of texts and tokens over GraphQL too', async () => {
    const both = await gql(stack.gatewayUrl, '{ embed(texts: ["a"], tokens: [[64]]) { index } }', {}, bearer(user.token));
    expect(both.errors?.[0]).toMatchObject({
      message: expect.stringContaining('embed expects exactly one of texts (strings) or tokens (arrays of token ids), but got both'),
      extensions: { code: 'BAD_USER_INPUT' },
    });
    const byIds = await gql(stack.gatewayUrl, '{ embed(tokens: [[64, 7850]]) { index dimensions } }', {}, bearer(user.token));
    expect(byIds.errors).toBeUndefined();
    expect(byIds.data).toEqual({ embed: [{ index: 0, dimensions: 128 }] });
  });

  it('lists and retrieves models, and answers an unknown one with 404 model_not_found', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(expect.arrayContaining(['sluice-chat', 'sluice-chat-batch', 'sluice-embed']));
    expect(await client.models.retrieve('sluice-chat')).toEqual({ id: 'sluice-chat', object: 'model', created: 0, owned_by: 'sluice' });
    const missing = await client.models.retrieve('no-such-model').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ status: 404, code: 'model_not_found' });
    const chat = await client.chat.completions.create({ model: 'no-such-model', messages: MESSAGES }).catch((e: unknown) => e);
    expect(chat).toMatchObject({ status: 404, code: 'model_not_found' });
  });
});

describe('errors as OpenAI shapes them', () => {
  it('401 for a bad key, 402 for an empty balance (whole and streamed), 400 naming the parameter', async () => {
    await expect(openai('sk-not-a-key').models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const broke = openai((await userWith(0, ['INFERENCE_INVOKE'])).key);
    const whole = await broke.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, max_tokens: 8 }).catch((e: unknown) => e);
    expect(whole).toBeInstanceOf(OpenAI.APIError);
    expect(whole).toMatchObject({ status: 402, type: 'insufficient_quota', code: 'insufficient_balance' });
    const streamed = await broke.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, max_tokens: 8, stream: true }).catch((e: unknown) => e);
    expect(streamed).toMatchObject({ status: 402, code: 'insufficient_balance' });
    await expect(client.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, max_tokens: 0 })).rejects.toMatchObject({ status: 400, param: 'max_tokens' });
    await expect(client.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES, n: 2 })).rejects.toMatchObject({ status: 400, param: 'n' });
  });

  it('403 for a key without the scope, then 429 with Retry-After and x-ratelimit headers past its plan', async () => {
    const reader = openai((await userWith(0, ['KNOWLEDGE_READ'])).key);
    const forbidden = await reader.chat.completions.create({ model: 'sluice-chat', messages: MESSAGES }).catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(OpenAI.PermissionDeniedError);
    const admitted = await reader.models.list().withResponse();
    expect(admitted.response.headers.get('x-ratelimit-limit-requests')).toBe('3');
    const answers: unknown[] = [];
    for (let i = 0; i < 3; i++) answers.push(await reader.models.list().catch((e: unknown) => e));
    const limited = answers.find((a) => a instanceof OpenAI.RateLimitError) as InstanceType<typeof OpenAI.RateLimitError>;
    expect(limited).toBeDefined();
    expect(limited).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'requests' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('x-ratelimit-limit-requests')).toBe('3');
    expect(limited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(limited.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+s$/);
  });
});
