/**
 * The response cache for repeatable completions (issue 8): a repeatable
 * request the caller opts into is answered from Redis the second time, with
 * the same text, without any GPU call, billed as configured; other users do
 * not share entries unless the operator says so. A real gpu-server runs
 * in-process; billing is a fake; Redis is the in-memory store.
 */
import type Redis from 'ioredis';
import type { Reservation, ReserveRequest } from '../../../lib/billing-client';
import { createLogger } from '../../../lib/log';
import { connectRedis } from '../../../lib/redis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM } from '../../../lib/usage-events';
import { PROJECT_REPOSITORY } from '../../../gpu-server/testing/temp-repository';
import { startGpuServer, type GpuServer } from '../../../gpu-server/server';
import { TritonClient } from '../gpu-tier/triton-client';
import { BatchGenerator } from './batch-generator';
import type { CompletionInput } from './completion-request';
import { Completions, type CompletionChunk } from './completions';
import { GpuTier } from '../gpu-tier/gpu-tier';
import { Metering, type Caller, type ResponseCacheBilling } from '../billing/usage-billing';
import { ModelCatalog } from '../models/model-catalog';
import { ResponseCache } from './response-cache';
import { UsagePublisher } from '../billing/usage-publisher';

const log = createLogger({ service: 'response-cache-test' });
let gpu: GpuServer;
let tier: GpuTier;
let triton: TritonClient;
let redis: Redis;
let catalog: ModelCatalog;
let metering: Metering;

const billing = {
  async reserve(_header: string, body: ReserveRequest): Promise<Reservation> {
    return { reservationId: body.reservationId, amountMicros: 1, expiresAt: Date.now() + 60_000, state: 'held' };
  },
};

beforeAll(async () => {
  gpu = await startGpuServer({ repository: PROJECT_REPOSITORY, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: log });
  tier = new GpuTier({ endpoints: [`127.0.0.1:${gpu.grpcPort}`], deadlineMs: 10_000, log });
  triton = new TritonClient(`127.0.0.1:${gpu.grpcPort}`, 10_000);
  redis = connectRedis('memory://', log);
  catalog = new ModelCatalog(tier, 60_000);
  metering = new Metering(billing, new UsagePublisher(redis, { log }), log);
}, 60_000);

afterAll(async () => {
  tier?.close();
  triton?.close();
  await gpu?.stop();
  redis?.disconnect();
});

function completions(options: { shared?: boolean; billing?: ResponseCacheBilling } = {}) {
  const responseCache = new ResponseCache(redis, { ttlSeconds: 60, shared: options.shared ?? false, maxTextChars: 10_000 });
  return new Completions(catalog, tier, new BatchGenerator(tier, 2, 10_000), metering, {
    limits: { maxMessages: 16, maxPromptChars: 10_000, defaultMaxTokens: 16 },
    streamDeadlineMs: 10_000,
    priorities: new Map(),
    responseCache,
    responseCacheBilling: options.billing ?? 'cache-hit',
  });
}

const caller = (sub: string): Caller => ({ identity: { sub, scopes: ['inference:invoke'], iat: 0, exp: 0 }, identityHeader: `header-of-${sub}` });
let counter = 0;
/** A new prompt per test, so tests never hit each other's entries. */
const input = (model: string, extra: Partial<CompletionInput> = {}): CompletionInput => ({
  model,
  messages: [{ role: 'user', content: `Name river number ${++counter}` }],
  maxTokens: 8,
  temperature: 0,
  cache: true,
  ...extra,
});

async function executions(model: string): Promise<number> {
  return Number((await triton.modelStatistics(model)).model_stats[0].execution_count);
}

async function lastEvent() {
  const [[, fields]] = (await redis.xrevrange(USAGE_EVENTS_STREAM, '+', '-', 'COUNT', 1)) as [string, string[]][];
  return decodeUsageEvent(fields);
}

async function drain(stream: AsyncGenerator<CompletionChunk>): Promise<CompletionChunk[]> {
  const chunks: CompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

describe('response cache', () => {
  it('answers a repeatable request the second time from the cache: same text, no GPU call, billed at the cache-hit price', async () => {
    const service = completions();
    const request = input('sluice-chat-batch');
    const first = await service.complete(caller('u1'), request);
    expect(first.cacheStatus).toBe('MISS');
    const before = await executions('sluice-chat-batch');
    const second = await service.complete(caller('u1'), request);
    expect(await executions('sluice-chat-batch')).toBe(before);
    expect(second).toMatchObject({ text: first.text, finishReason: first.finishReason, cacheStatus: 'HIT' });
    const replayed = first.usage.promptTokens + first.usage.completionTokens;
    expect(second.usage).toEqual({ promptTokens: replayed, completionTokens: 0, totalTokens: replayed, promptCacheHitTokens: replayed, promptCacheMissTokens: 0 });
    expect(await lastEvent()).toMatchObject({ userId: 'u1', promptCacheHitTokens: replayed, promptCacheMissTokens: 0, completionTokens: 0 });
  });

  it('replays a hit as a stream, from an entry a streamed request filled', async () => {
    const service = completions();
    const request = input('sluice-chat');
    const first = await drain(await service.stream(caller('u1'), request));
    const text = first.map((c) => c.delta).join('');
    expect(first[first.length - 1].cacheStatus).toBe('MISS');
    const before = await executions('sluice-chat');
    const second = await drain(await service.stream(caller('u1'), request));
    expect(await executions('sluice-chat')).toBe(before);
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ delta: text, cacheStatus: 'HIT', finishReason: first[first.length - 1].finishReason });
  });

  it('keeps entries per user unless shared, and bills nothing for a hit when configured free', async () => {
    const request = input('sluice-chat-batch');
    await completions().complete(caller('u1'), request);
    expect((await completions().complete(caller('u2'), request)).cacheStatus).toBe('MISS');
    const shared = completions({ shared: true, billing: 'free' });
    await shared.complete(caller('u1'), request);
    const hit = await shared.complete(caller('u3'), request);
    expect(hit.cacheStatus).toBe('HIT');
    expect(hit.usage.totalTokens).toBe(0);
    expect(await lastEvent()).toMatchObject({ userId: 'u3', promptTokens: 0, completionTokens: 0 });
  });

  it('bypasses requests that are not repeatable or opt out, and never stores them', async () => {
    const service = completions();
    const random = input('sluice-chat-batch', { temperature: 1 });
    expect((await service.complete(caller('u1'), random)).cacheStatus).toBe('BYPASS');
    expect((await service.complete(caller('u1'), random)).cacheStatus).toBe('BYPASS');
    const optedOut = input('sluice-chat-batch', { cache: false });
    expect((await service.complete(caller('u1'), optedOut)).cacheStatus).toBe('BYPASS');
    expect((await service.complete(caller('u1'), optedOut)).cacheStatus).toBe('BYPASS');
    const seeded = input('sluice-chat-batch', { temperature: 0.9, seed: 5 });
    expect((await service.complete(caller('u1'), seeded)).cacheStatus).toBe('MISS');
    expect((await service.complete(caller('u1'), seeded)).cacheStatus).toBe('HIT');
  });
});
