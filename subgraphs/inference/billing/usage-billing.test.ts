/**
 * Metering of completions (issue 9): a reservation before the GPU tier is
 * called, exactly one usage event per ended request whatever way it ends,
 * the event's usage equal to what the client is shown, and the prompt-cache
 * split as the GPU reported it. A real gpu-server runs in-process (sluice-chat streams,
 * sluice-chat-batch batches); billing is a fake that records reservations;
 * Redis is the in-memory store.
 */
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { ReserveRequest, Reservation } from '../../../lib/billing-client';
import { codedError, ErrorCode } from '../../../lib/errors';
import type { Identity } from '../../../lib/identity';
import { createLogger } from '../../../lib/log';
import { connectRedis } from '../../../lib/redis';
import { countTokens } from '../../../lib/token-counter';
import { decodeUsageEvent, USAGE_EVENTS_STREAM, type UsageEvent } from '../../../lib/usage-events';
import { freePort } from '../../../scripts/free-port';
import { PROJECT_REPOSITORY } from '../../../gpu-server/testing/temp-repository';
import { startGpuServer, type GpuServer } from '../../../gpu-server/server';
import { BatchGenerator } from '../completions/batch-generator';
import { renderChat } from '../completions/chat-template';
import type { CompletionInput } from '../completions/completion-request';
import { Completions, type CompletionChunk } from '../completions/completions';
import { EmbeddingBatcher } from '../embeddings/embedding-batcher';
import { Embeddings } from '../embeddings/embeddings';
import { GpuTier } from '../gpu-tier/gpu-tier';
import { Metering, type Caller, type Reserver } from './usage-billing';
import { ModelCatalog } from '../models/model-catalog';
import { ResponseCache } from '../completions/response-cache';
import { UsagePublisher } from './usage-publisher';

class FakeBilling implements Reserver {
  readonly calls: Array<{ identityHeader: string; body: ReserveRequest }> = [];
  refusal: Error | undefined;

  async reserve(identityHeader: string, body: ReserveRequest): Promise<Reservation> {
    this.calls.push({ identityHeader, body });
    if (this.refusal) throw this.refusal;
    return { reservationId: body.reservationId, amountMicros: 1, expiresAt: Date.now() + 60_000, state: 'held' };
  }
}

const log = createLogger({ service: 'metering-test' });
let gpu: GpuServer;
let tier: GpuTier;
let deadTier: GpuTier;
let redis: Redis;
let billing: FakeBilling;
let metering: Metering;
let catalog: ModelCatalog;
let completions: Completions;
const limits = { maxMessages: 256, maxPromptChars: 200_000, defaultMaxTokens: 256 };
/** No request here opts in and no model enables it: every request bypasses the response cache. */
const responseCacheOff = () => ({ responseCache: new ResponseCache(redis, { ttlSeconds: 60, shared: false, maxTextChars: 10_000 }), responseCacheBilling: 'cache-hit' as const });

beforeAll(async () => {
  gpu = await startGpuServer({ repository: PROJECT_REPOSITORY, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: log });
  tier = new GpuTier({ endpoints: [`127.0.0.1:${gpu.grpcPort}`], deadlineMs: 10_000, log });
  deadTier = new GpuTier({ endpoints: [`127.0.0.1:${await freePort()}`], deadlineMs: 2_000, log, backoffMs: 1 });
  redis = connectRedis('memory://', log);
  billing = new FakeBilling();
  metering = new Metering(billing, new UsagePublisher(redis, { log }), log);
  catalog = new ModelCatalog(tier, 60_000);
  completions = new Completions(catalog, tier, new BatchGenerator(tier, 2, 10_000), metering, { limits, streamDeadlineMs: 10_000, priorities: new Map(), ...responseCacheOff() });
}, 60_000);

afterAll(async () => {
  tier?.close();
  deadTier?.close();
  redis?.disconnect();
  await gpu?.stop();
});

beforeEach(() => {
  billing.refusal = undefined;
});

function caller(keyId?: string): Caller {
  const identity: Identity = { sub: `user-${randomUUID()}`, scopes: ['inference:invoke'], iat: 0, exp: 0, ...(keyId ? { keyId } : {}) };
  return { identity, identityHeader: `v1.header-of-${identity.sub}.signature` };
}

const MESSAGES = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name a river, please.' },
];
const input = (extra: Partial<CompletionInput> = {}): CompletionInput => ({ model: 'sluice-chat', messages: MESSAGES, maxTokens: 8, seed: 7, ...extra });

/** The events published for one caller, once everything in flight has been published. */
async function eventsOf(who: Caller): Promise<UsageEvent[]> {
  expect(await metering.drain(10_000)).toBe(true);
  const entries = await redis.xrange(USAGE_EVENTS_STREAM, '-', '+');
  return entries.map(([, fields]) => decodeUsageEvent(fields)).filter((e) => e.userId === who.identity.sub);
}

function reservationOf(who: Caller) {
  const calls = billing.calls.filter((c) => c.identityHeader === who.identityHeader);
  expect(calls).toHaveLength(1);
  return calls[0];
}

/** Requests the gpu-server has run or failed, across the text-generation models. */
function gpuRequests(): number {
  return ['sluice-chat', 'sluice-chat-batch']
    .flatMap((m) => gpu.core.statistics(m))
    .reduce((n, s) => n + Number(s.inference_count) + Number(s.inference_stats.success.count) + Number(s.inference_stats.fail.count), 0);
}

async function drainStream(iterator: AsyncGenerator<CompletionChunk>): Promise<CompletionChunk[]> {
  const chunks: CompletionChunk[] = [];
  for await (const chunk of iterator) chunks.push(chunk);
  return chunks;
}

const usageOf = (e: UsageEvent) => ({
  promptTokens: e.promptTokens,
  completionTokens: e.completionTokens,
  totalTokens: e.promptTokens + e.completionTokens,
  promptCacheHitTokens: e.promptCacheHitTokens,
  promptCacheMissTokens: e.promptCacheMissTokens,
});

describe('reserving before the GPU tier is called', () => {
  it.each(['sluice-chat', 'sluice-chat-batch'])('reserves the maximum cost of %s with the caller identity forwarded unchanged', async (model) => {
    const who = caller('key-1');
    await completions.complete(who, input({ model, maxTokens: 5 }));
    const { body } = reservationOf(who);
    const prompt = renderChat(undefined, MESSAGES);
    expect(body).toEqual({ reservationId: expect.stringMatching(/^[0-9a-f-]{36}$/), model, promptTokens: Buffer.byteLength(prompt), maxCompletionTokens: 5 });
    const [event] = await eventsOf(who);
    expect(event).toMatchObject({ reservationId: body.reservationId, keyId: 'key-1', model, modelVersion: '1' });
  });

  it('caps the prompt bound at the model context length', async () => {
    const who = caller();
    const long = 'ü'.repeat(700); // 1,400 bytes, more than sluice-chat's 1,024-token context
    await completions.complete(who, input({ messages: [{ role: 'user', content: long }], maxTokens: 1 })).catch(() => undefined);
    expect(reservationOf(who).body.promptTokens).toBe(1_024);
  });

  it.each([
    ['INSUFFICIENT_BALANCE', codedError(ErrorCode.InsufficientBalance, 'the balance is short', { needed: 10, available: 3 })],
    ['SPEND_LIMIT_EXCEEDED', codedError(ErrorCode.SpendLimitExceeded, 'the daily cap would be passed', { period: 'DAY' })],
    ['SERVICE_UNAVAILABLE', codedError(ErrorCode.ServiceUnavailable, 'billing could not reserve', { service: 'billing' })],
  ])('on %s refuses complete and completionStream without calling the GPU tier or publishing usage', async (code, refusal) => {
    billing.refusal = refusal;
    const who = caller();
    const before = gpuRequests();
    for (const model of ['sluice-chat', 'sluice-chat-batch']) {
      await expect(completions.complete(who, input({ model }))).rejects.toMatchObject({ extensions: { code } });
      await expect(completions.stream(who, input({ model }))).rejects.toMatchObject({ extensions: { code } });
    }
    expect(gpuRequests()).toBe(before);
    expect(await eventsOf(who)).toEqual([]);
  });

  it('refuses a bad input before reserving anything', async () => {
    const who = caller();
    await expect(completions.complete(who, input({ maxTokens: 0 }))).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(billing.calls.filter((c) => c.identityHeader === who.identityHeader)).toEqual([]);
  });
});

describe('one usage event per ended request, with the usage the client is shown', () => {
  it.each(['sluice-chat', 'sluice-chat-batch'])('complete on %s: the server counts', async (model) => {
    const who = caller();
    const before = gpuRequests();
    const completion = await completions.complete(who, input({ model }));
    // What the refusal tests count does move (the server counts a request before its final response goes out).
    expect(gpuRequests()).toBeGreaterThan(before);
    const events = await eventsOf(who);
    expect(events).toHaveLength(1);
    expect(completion.usage.promptTokens).toBeGreaterThan(5);
    expect(completion.usage.completionTokens).toBeGreaterThan(0);
    expect(usageOf(events[0])).toEqual(completion.usage);
    expect(events[0].finishReason).toBe(completion.finishReason);
  });

  it.each(['sluice-chat', 'sluice-chat-batch'])('a finished stream on %s: the last chunk usage', async (model) => {
    const who = caller();
    const chunks = await drainStream(await completions.stream(who, input({ model })));
    const final = chunks[chunks.length - 1];
    expect(final.finishReason).toMatch(/^(STOP|LENGTH)$/);
    const events = await eventsOf(who);
    expect(events).toHaveLength(1);
    expect(usageOf(events[0])).toEqual(final.usage);
    expect(events[0].finishReason).toBe(final.finishReason);
  });

  it('a stream cancelled by unsubscribing: the tokens of the text sent, the prompt as the server counted it', async () => {
    const who = caller();
    const iterator = await completions.stream(who, input({ maxTokens: 900, temperature: 1 }));
    const first = await iterator.next();
    expect(first.value.finishReason).toBeNull(); // cut short, not finished
    await iterator.return(undefined);
    const events = await eventsOf(who);
    expect(events).toHaveLength(1);
    expect(events[0].finishReason).toBe('CANCELLED');
    expect(events[0].completionTokens).toBe(countTokens(first.value.delta));
    expect(events[0].promptTokens).toBeGreaterThan(5);
    expect(events[0].reservationId).toBe(reservationOf(who).body.reservationId);
  });

  it('a stream unsubscribed before its first chunk: 0/0, which releases the hold, and the GPU tier is never called', async () => {
    const who = caller();
    const before = gpuRequests();
    const iterator = await completions.stream(who, input());
    await iterator.return(undefined);
    const events = await eventsOf(who);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ finishReason: 'CANCELLED', promptTokens: 0, completionTokens: 0, reservationId: reservationOf(who).body.reservationId });
    expect(gpuRequests()).toBe(before);
  });

  it('a stream past its deadline: ERROR, billed for the text sent with the error chunk included', async () => {
    const hurried = new Completions(catalog, tier, new BatchGenerator(tier, 2, 10_000), metering, { limits, streamDeadlineMs: 20, priorities: new Map(), ...responseCacheOff() });
    const who = caller();
    const chunks = await drainStream(await hurried.stream(who, input({ maxTokens: 900 })));
    const final = chunks[chunks.length - 1];
    expect(final).toMatchObject({ finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE' } });
    const events = await eventsOf(who);
    expect(events).toHaveLength(1);
    expect(events[0].finishReason).toBe('ERROR');
    expect(usageOf(events[0])).toEqual(final.usage);
    expect(events[0].completionTokens).toBe(countTokens(chunks.map((c) => c.delta).join('')));
  });

  it('complete on a model whose stream fails: the error, and one ERROR event', async () => {
    const hurried = new Completions(catalog, tier, new BatchGenerator(tier, 2, 10_000), metering, { limits, streamDeadlineMs: 20, priorities: new Map(), ...responseCacheOff() });
    const who = caller();
    await expect(hurried.complete(who, input({ maxTokens: 900 }))).rejects.toMatchObject({ extensions: { code: 'GPU_UNAVAILABLE' } });
    const events = await eventsOf(who);
    expect(events).toHaveLength(1);
    // The mutation sent the client nothing, so nothing generated is billed.
    expect(events[0]).toMatchObject({ finishReason: 'ERROR', completionTokens: 0 });
  });

  it.each(['sluice-chat', 'sluice-chat-batch'])('a GPU tier that cannot be reached, on %s: 0/0 for complete and for a stream', async (model) => {
    // The catalog still knows the models; only the calls that generate go to the unreachable endpoint.
    const unreachable = new Completions(catalog, deadTier, new BatchGenerator(deadTier, 2, 2_000), metering, { limits, streamDeadlineMs: 10_000, priorities: new Map(), ...responseCacheOff() });
    const who = caller();
    await expect(unreachable.complete(who, input({ model }))).rejects.toMatchObject({ extensions: { code: 'GPU_UNAVAILABLE' } });
    const chunks = await drainStream(await unreachable.stream(who, input({ model })));
    expect(chunks[chunks.length - 1]).toMatchObject({ finishReason: 'ERROR', usage: { promptTokens: 0, completionTokens: 0 } });
    const events = await eventsOf(who);
    expect(events.map((e) => [e.finishReason, e.promptTokens, e.completionTokens])).toEqual([
      ['ERROR', 0, 0],
      ['ERROR', 0, 0],
    ]);
    expect(new Set(events.map((e) => e.reservationId))).toEqual(new Set(billing.calls.filter((c) => c.identityHeader === who.identityHeader).map((c) => c.body.reservationId)));
  });

  it('many concurrent requests of every kind: exactly one event each, with distinct reservations', async () => {
    const who = caller();
    const runs = Array.from({ length: 24 }, async (_, i) => {
      const model = i % 2 ? 'sluice-chat' : 'sluice-chat-batch';
      if (i % 3 === 0) return completions.complete(who, input({ model, seed: i }));
      const iterator = await completions.stream(who, input({ model, seed: i, maxTokens: 64 }));
      if (i % 3 === 1) return drainStream(iterator);
      await iterator.next();
      return iterator.return(undefined);
    });
    await Promise.all(runs);
    const events = await eventsOf(who);
    expect(events).toHaveLength(24);
    expect(new Set(events.map((e) => e.reservationId)).size).toBe(24);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(24);
  });
});

describe('prompt-cache accounting: exactly what the GPU reused', () => {
  const SYSTEM = { role: 'system', content: 'You are terse. Answer in one line, name your source, and never apologise for anything at all.' };
  const conversation = (turns: number) => [
    SYSTEM,
    ...Array.from({ length: turns }, (_, i) => [
      { role: 'user', content: `Name river number ${i + 1}, please.` },
      ...(i + 1 < turns ? [{ role: 'assistant', content: `River ${i + 1} is the Nile.` }] : []),
    ]).flat(),
  ];
  /** Prompt tokens the gpu-server's prefix caches have served, every model summed, as its metrics say. */
  const gpuHits = async () => {
    const text = await (await fetch(`http://127.0.0.1:${gpu.metricsPort}/metrics`)).text();
    return [...text.matchAll(/^sluice_prefix_cache_hit_tokens\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };

  it('bills no hit for a new conversation, then the sluice_cached_prompt_tokens the GPU reports as its earlier turns come back', async () => {
    const who = caller();
    const before = await gpuHits();
    const first = await completions.complete(who, input({ messages: conversation(1) }));
    expect(first.usage).toMatchObject({ promptCacheHitTokens: 0, promptCacheMissTokens: first.usage.promptTokens });
    const chunks = await drainStream(await completions.stream(who, input({ messages: conversation(2) })));
    const second = chunks[chunks.length - 1].usage!;
    // Whole 16-token blocks of the first prompt came from the GPU's cache.
    expect(second.promptCacheHitTokens).toBeGreaterThanOrEqual(16);
    expect(second.promptCacheHitTokens % 16).toBe(0);
    expect(second.promptCacheHitTokens).toBeLessThan(first.usage.promptTokens);
    expect(second.promptCacheMissTokens).toBe(second.promptTokens - second.promptCacheHitTokens);
    expect((await gpuHits()) - before).toBe(second.promptCacheHitTokens);
    expect((await eventsOf(who)).map(usageOf)).toEqual([first.usage, second]);
  });

  it('bills each row of a batch its own hit (sluice_cached_prompt_tokens_rows)', async () => {
    await completions.complete(caller(), input({ model: 'sluice-chat-batch', messages: conversation(3) }));
    const before = await gpuHits();
    const callers = [caller(), caller(), caller()];
    // One shares the first turns, one the whole conversation, one nothing: all three in one ModelInfer batch.
    const inputs = [conversation(2), conversation(3), [{ role: 'user', content: 'Something else entirely, with no shared prefix at all.' }]];
    const results = await Promise.all(callers.map((who, i) => completions.complete(who, input({ model: 'sluice-chat-batch', messages: inputs[i], seed: i }))));
    const hits = results.map((r) => r.usage.promptCacheHitTokens);
    expect(hits[0]).toBeGreaterThan(0);
    expect(hits[1]).toBe(Math.floor((results[1].usage.promptTokens - 1) / 16) * 16);
    expect(hits[2]).toBe(0);
    expect((await gpuHits()) - before).toBe(hits[0] + hits[1] + hits[2]);
    for (const [i, who] of callers.entries()) expect((await eventsOf(who)).map(usageOf)).toEqual([results[i].usage]);
  });

  it('bills every prompt token as a miss when the server reports no sluice_cached_prompt_tokens (a real Triton)', async () => {
    const who = caller();
    const prompt = renderChat(undefined, MESSAGES);
    const model = (await catalog.get('sluice-chat'))!;
    const metered = await metering.begin(who, { model, messages: MESSAGES, prompt, sampling: { max_tokens: 8, temperature: 1, top_p: 1 } });
    metered.received({ text: 'The Nile.', inputTokens: 30, outputTokens: 4, finishReason: 'stop', cachedPromptTokens: null });
    expect(metered.end('STOP', true)).toEqual({ promptTokens: 30, completionTokens: 4, totalTokens: 34, promptCacheHitTokens: 0, promptCacheMissTokens: 30 });
  });
});

describe('embeddings are metered too', () => {
  const embedCount = () => gpu.core.statistics('sluice-embed').reduce((n, s) => n + Number(s.inference_count), 0);
  const embeddings = () => new Embeddings(catalog, new EmbeddingBatcher(tier, 2), { maxTexts: 64, maxTextChars: 40_000 }, new Map(), metering);

  it("reserves the texts' bytes (at most the model's max_tokens each), then bills their counted tokens, output 0", async () => {
    const who = caller();
    const texts = ['Hello World', 'x'.repeat(10_000)];
    await embeddings().embed(who, texts);
    expect(reservationOf(who).body).toMatchObject({ model: 'sluice-embed', promptTokens: 11 + 256, maxCompletionTokens: 0 });
    const [event] = await eventsOf(who);
    const expected = countTokens('hello world') + 256; // the long text is cut at max_tokens, as the model reads it
    expect(event).toMatchObject({ model: 'sluice-embed', promptTokens: expected, promptCacheMissTokens: expected, completionTokens: 0, finishReason: 'STOP' });
  });

  it('calls no GPU when billing refuses, and bills nothing for a failed call', async () => {
    const who = caller();
    billing.refusal = codedError(ErrorCode.InsufficientBalance, 'short', { needed: 1, available: 0 });
    const before = embedCount();
    await expect(embeddings().embed(who, ['text'])).rejects.toMatchObject({ extensions: { code: 'INSUFFICIENT_BALANCE' } });
    expect(embedCount()).toBe(before);
    billing.refusal = undefined;
    const failing = new Embeddings(
      catalog,
      { embed: async () => Promise.reject(new Error('the GPU tier broke')) } as unknown as EmbeddingBatcher,
      { maxTexts: 64, maxTextChars: 100 },
      new Map(),
      metering,
    );
    await expect(failing.embed(who, ['text'])).rejects.toBeDefined();
    expect((await eventsOf(who)).map((e) => [e.promptTokens, e.finishReason])).toEqual([[0, 'ERROR']]);
  });
});
