/**
 * The chat route's SSE framing, over a real HTTP server on port 0, with the
 * graph replaced by scripted subscription events: the order and shape of the
 * chunks, an error after the stream started, a stream cut short upstream, a
 * refusal as the first event, and a client that leaves. (Against the real
 * graph: test/openai.e2e.test.ts.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendJson } from '../../lib/http-service';
import type { GatewayContext } from '../auth/context';
import type { UpstreamEvent } from '../subscriptions/upstream';
import { OpenAiError } from './errors';
import { serveChatCompletion, type ChatGraph } from './serve-chat';

const USAGE = { promptTokens: 5, completionTokens: 2, totalTokens: 7, promptCacheHitTokens: 1, promptCacheMissTokens: 4 };
const MODEL = { id: 'sluice-chat', version: '1' };
const chunk = (delta: string, rest: Record<string, unknown> = {}): UpstreamEvent => ({
  data: { completionStream: { id: 'c1', delta, finishReason: null, usage: null, error: null, model: MODEL, ...rest } },
});

let server: Server;
let url: string;
/**
 * The events the next subscription yields, the first after `delayMs`; after them it waits until closed when `hang` is
 * set. The route's subscribe call is reported to `subscribing`; with `admitted`, the subscription starts only once it
 * settles (admission waiting on Redis).
 */
let script: { events: UpstreamEvent[]; hang?: boolean; delayMs?: number; subscribing?: () => void; admitted?: Promise<void> };
let keepAliveMs = 60_000;
let closed: Promise<void>;
/** Whether the last subscription's events had all been read when it was closed. */
let readToEndAtClose: boolean;
/** Whether the last subscription's events were asked for at all (asking starts the generation). */
let pulled: boolean;
/** Settles when the last request's response closes. */
let responseClosed: Promise<void>;

beforeAll(async () => {
  server = createServer((req, res) => {
    responseClosed = new Promise((resolve) => res.once('close', resolve));
    let text = '';
    req
      .on('data', (c) => (text += c))
      .on('end', () => {
        serveChatCompletion(scriptedGraph(), res, JSON.parse(text), {} as GatewayContext, { keepAliveMs, idempotencyKey: req.headers['idempotency-key'] as string | undefined }).catch((error) => {
          if (error instanceof OpenAiError && !res.headersSent) sendJson(res, error.status, error.body, error.headers);
        });
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

function scriptedGraph(): ChatGraph {
  let markClosed!: () => void;
  closed = new Promise((resolve) => (markClosed = resolve));
  const { events, hang, delayMs = 0, subscribing, admitted } = script;
  pulled = false;
  return {
    execute: () => Promise.reject(new Error('the streamed route does not execute')),
    subscribe: async () => {
      subscribing?.();
      await admitted;
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let readToEnd = false;
      const generator = (async function* () {
        pulled = true;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        yield* events;
        if (hang) await released;
        readToEnd = true;
      })();
      return {
        events: generator,
        close: async () => {
          readToEndAtClose = readToEnd;
          release();
          await generator.return(undefined);
          markClosed();
        },
      };
    },
  };
}

async function stream(extra: Record<string, unknown> = {}): Promise<{ status: number; events: string[] }> {
  const response = await fetch(url, { method: 'POST', body: JSON.stringify({ model: 'sluice-chat', messages: [{ role: 'user', content: 'hi' }], stream: true, ...extra }) });
  const text = await response.text();
  if (response.status !== 200) return { status: response.status, events: [text] };
  return {
    status: 200,
    events: text
      .split('\n\n')
      .filter(Boolean)
      .map((e) => e.replace(/^data: /, '')),
  };
}

const parsed = (events: string[]) => events.slice(0, -1).map((e) => JSON.parse(e));

it('sends the role, each piece of text, the finish, the usage when asked, then [DONE]', async () => {
  script = { events: [chunk('Ri'), chunk('ver'), chunk('.', { finishReason: 'STOP', usage: USAGE })] };
  const { status, events } = await stream({ stream_options: { include_usage: true } });
  expect(status).toBe(200);
  expect(events[events.length - 1]).toBe('[DONE]');
  const chunks = parsed(events);
  const base = { id: 'chatcmpl-c1', object: 'chat.completion.chunk', created: expect.any(Number), model: 'sluice-chat', system_fingerprint: 'sluice-chat@1', usage: null };
  const choice = (delta: object, finish: string | null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  expect(chunks).toEqual([
    choice({ role: 'assistant', content: '' }, null),
    choice({ content: 'Ri' }, null),
    choice({ content: 'ver' }, null),
    choice({ content: '.' }, null),
    choice({}, 'stop'),
    { ...base, choices: [], usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7, prompt_cache_hit_tokens: 1, prompt_cache_miss_tokens: 4, prompt_tokens_details: { cached_tokens: 1 } } },
  ]);
  await closed;
});

it('after the last chunk, lets the upstream end on its own rather than unsubscribing, and unsubscribes one that lingers', async () => {
  script = { events: [chunk('a'), chunk('', { finishReason: 'STOP', usage: USAGE })] };
  await stream();
  await closed;
  expect(readToEndAtClose).toBe(true);

  script = { events: [chunk('a'), chunk('', { finishReason: 'STOP', usage: USAGE })], hang: true };
  const { events } = await stream();
  expect(events[events.length - 1]).toBe('[DONE]');
  await closed;
  expect(readToEndAtClose).toBe(false);
});

it("writes a text chunk's fields in OpenAI's order, its text escaped as JSON", async () => {
  script = { events: [chunk('say "hi"\n\u0000'), chunk('', { finishReason: 'STOP', usage: USAGE })] };
  for (const includeUsage of [true, false]) {
    const { events } = await stream(includeUsage ? { stream_options: { include_usage: true } } : {});
    const { created } = JSON.parse(events[1]) as { created: number };
    const usage = includeUsage ? { usage: null } : {};
    const expected = {
      id: 'chatcmpl-c1',
      object: 'chat.completion.chunk',
      created,
      model: 'sluice-chat',
      system_fingerprint: 'sluice-chat@1',
      choices: [{ index: 0, delta: { content: 'say "hi"\n\u0000' }, logprobs: null, finish_reason: null }],
      ...usage,
    };
    expect(events[1]).toBe(JSON.stringify(expected));
  }
});

it('without include_usage sends no usage chunk and no usage field', async () => {
  script = { events: [chunk('a'), chunk('', { finishReason: 'LENGTH', usage: USAGE })] };
  const chunks = parsed((await stream()).events);
  expect(chunks.map((c) => c.choices[0]?.finish_reason)).toEqual([null, null, 'length']);
  expect(chunks.every((c) => !('usage' in c))).toBe(true);
});

it('sends an error after the stream started as an error event, then [DONE]', async () => {
  script = { events: [chunk('a'), chunk('', { finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE', message: 'the gpu-server went away' } })] };
  const { events } = await stream();
  expect(events.slice(-2)).toEqual([JSON.stringify({ error: { message: 'the gpu-server went away', type: 'server_error', param: null, code: 'gpu_unavailable' } }), '[DONE]']);
  script = { events: [chunk('a'), { errors: [{ message: 'subgraph inference closed the stream', extensions: { code: 'SERVICE_UNAVAILABLE' } }] }] };
  expect(JSON.parse((await stream()).events.slice(-2)[0])).toMatchObject({ error: { code: 'service_unavailable' } });
});

it('ends a stream cut short upstream with an error event, never a hang', async () => {
  script = { events: [chunk('a')] };
  const { events } = await stream();
  expect(events.slice(-2)).toEqual([
    JSON.stringify({ error: { message: 'the completion stream ended without its last chunk; retry', type: 'server_error', param: null, code: 'service_unavailable' } }),
    '[DONE]',
  ]);
});

it('answers a refusal that comes as the first event with its status, not a stream', async () => {
  script = { events: [{ errors: [{ message: 'the balance is 0', extensions: { code: 'INSUFFICIENT_BALANCE' } }] }] };
  const { status, events } = await stream();
  expect(status).toBe(402);
  expect(JSON.parse(events[0])).toEqual({ error: { message: 'the balance is 0', type: 'insufficient_quota', param: null, code: 'insufficient_balance' } });
  await closed;
});

it('starts the stream with keep-alives when the first event is slower than the keep-alive interval; a refusal then is an error event', async () => {
  keepAliveMs = 50;
  try {
    script = { events: [chunk('a'), chunk('', { finishReason: 'STOP', usage: USAGE })], delayMs: 120 };
    const answered = await stream();
    expect(answered.status).toBe(200);
    expect(answered.events[0]).toBe(': keep-alive');
    expect(answered.events.filter((e) => !e.startsWith(':')).map((e) => (e === '[DONE]' ? e : JSON.parse(e).choices[0].finish_reason))).toEqual([null, null, 'stop', '[DONE]']);
    script = { events: [{ errors: [{ message: 'the balance is 0', extensions: { code: 'INSUFFICIENT_BALANCE' } }] }], delayMs: 80 };
    const refused = await stream();
    expect(refused.status).toBe(200);
    expect(refused.events.filter((e) => !e.startsWith(':'))).toEqual([
      JSON.stringify({ error: { message: 'the balance is 0', type: 'insufficient_quota', param: null, code: 'insufficient_balance' } }),
      '[DONE]',
    ]);
  } finally {
    keepAliveMs = 60_000;
  }
});

it('closes the subscription when the client leaves mid-stream', async () => {
  script = { events: [chunk('a')], hang: true };
  const controller = new AbortController();
  const response = await fetch(url, { method: 'POST', body: JSON.stringify({ model: 'sluice-chat', messages: [{ role: 'user', content: 'hi' }], stream: true }), signal: controller.signal });
  const reader = response.body!.getReader();
  let text = '';
  while (!text.includes('"content":"a"')) text += new TextDecoder().decode((await reader.read()).value);
  controller.abort();
  await closed; // the test times out if the subscription is never closed
});

it('closes the subscription, never starting its generation, when the client leaves while it is admitted', async () => {
  let admit!: () => void;
  let subscribed!: () => void;
  const subscribing = new Promise<void>((resolve) => (subscribed = resolve));
  script = { events: [chunk('a'), chunk('', { finishReason: 'STOP', usage: USAGE })], subscribing: subscribed, admitted: new Promise((resolve) => (admit = resolve)) };
  const controller = new AbortController();
  const request = fetch(url, { method: 'POST', body: JSON.stringify({ model: 'sluice-chat', messages: [{ role: 'user', content: 'hi' }], stream: true }), signal: controller.signal });
  await subscribing;
  controller.abort();
  await expect(request).rejects.toThrow();
  await responseClosed;
  admit();
  await closed;
  expect(pulled).toBe(false);
});

it('refuses an Idempotency-Key on a stream, naming the header: a stream is not kept to be replayed', async () => {
  script = { events: [chunk('a', { finishReason: 'STOP', usage: USAGE })] };
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'idempotency-key': 'retry-1' },
    body: JSON.stringify({ model: 'sluice-chat', messages: [{ role: 'user', content: 'hi' }], stream: true }),
  });
  expect(response.status).toBe(400);
  expect(await response.json()).toMatchObject({
    error: { type: 'invalid_request_error', param: 'Idempotency-Key', message: expect.stringContaining('a stream (stream: true) is not kept to be replayed') },
  });
});
