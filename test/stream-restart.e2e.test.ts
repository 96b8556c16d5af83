/**
 * A stream whose GPU server is lost under it (two gpu-server PROCESSES, the
 * one holding the most streams SIGKILLed mid-generation) is started again on
 * the other with its seed — the client's, or the one the server chose — and
 * sent on from where it was: the client reads every stream to its end, with
 * no error, no text twice and no gap (each chunk's offset is where the text
 * stood), the seeded ones the very text an uncut request with their seed
 * gets, and each request is billed once for the whole text. Completions,
 * metering and the GPU tier run in this process, billing is a fake that
 * holds every reservation, Redis is the in-memory store. (The quick chaos
 * suite kills a gpu-server under the whole stack's load.)
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import type Redis from 'ioredis';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { PROJECT_REPOSITORY } from '../gpu-server/testing/temp-repository';
import type { Reservation, ReserveRequest } from '../lib/billing-client';
import { createLogger } from '../lib/log';
import { connectRedis } from '../lib/redis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM } from '../lib/usage-events';
import { Metering, type Caller } from '../subgraphs/inference/billing/usage-billing';
import { UsagePublisher } from '../subgraphs/inference/billing/usage-publisher';
import { BatchGenerator } from '../subgraphs/inference/completions/batch-generator';
import type { CompletionInput } from '../subgraphs/inference/completions/completion-request';
import { Completions, type CompletionChunk } from '../subgraphs/inference/completions/completions';
import { ResponseCache } from '../subgraphs/inference/completions/response-cache';
import { GpuTier } from '../subgraphs/inference/gpu-tier/gpu-tier';
import { ModelCatalog } from '../subgraphs/inference/models/model-catalog';
import { repositoryOf, startGpuProcess, stopGpuProcess, type GpuProcess } from './support/gpu-processes';

const log = createLogger({ service: 'stream-restart-e2e' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let repositories: string[];
let gpus: GpuProcess[];
let tier: GpuTier;
let redis: Redis;
let metering: Metering;
let completions: Completions;
/** The completion ids Completions logged as restarted. */
const restarted: string[] = [];

beforeAll(async () => {
  await buildModels(PROJECT_REPOSITORY);
  repositories = ['A', 'B'].map((name) => repositoryOf(['sluice-chat'], `restart-${name}`));
  gpus = await Promise.all(repositories.map((repository) => startGpuProcess(repository)));
  tier = new GpuTier({ endpoints: gpus.map((g) => g.address), deadlineMs: 30_000, log, probeIntervalMs: 200, backoffMs: 1 });
  redis = connectRedis('memory://', log);
  const billing = {
    reserve: async (_header: string, body: ReserveRequest): Promise<Reservation> => ({ reservationId: body.reservationId, amountMicros: 1, expiresAt: Date.now() + 60_000, state: 'held' }),
  };
  metering = new Metering(billing, new UsagePublisher(redis, { log }), log);
  completions = new Completions(new ModelCatalog(tier, 60_000), tier, new BatchGenerator(tier, 2, 30_000), metering, {
    limits: { maxMessages: 16, maxPromptChars: 10_000, defaultMaxTokens: 256 },
    streamDeadlineMs: 60_000,
    priorities: new Map(),
    responseCache: new ResponseCache(redis, { ttlSeconds: 60, shared: false, maxTextChars: 100_000 }),
    responseCacheBilling: 'cache-hit',
    log: {
      ...log,
      warn: (message: string, fields?: Record<string, unknown>) => {
        if (message.startsWith('stream restarted')) restarted.push(String(fields?.id));
        log.warn(message, fields);
      },
    },
  });
}, 120_000);

afterAll(async () => {
  tier?.close();
  redis?.disconnect();
  await Promise.all((gpus ?? []).map((g) => stopGpuProcess(g)));
  for (const dir of repositories ?? []) rmSync(dir, { recursive: true, force: true });
});

const caller = (): Caller => {
  const sub = `user-${randomUUID()}`;
  return { identity: { sub, scopes: ['inference:invoke'], iat: 0, exp: 0 }, identityHeader: `v1.header-of-${sub}.signature` };
};
// Long enough to be mid-generation at the kill; no response cache, so the uncut request below is generated too.
const input = (i: number, seed?: number): CompletionInput => ({
  model: 'sluice-chat',
  messages: [{ role: 'user', content: `Tell a long story, number ${i}.` }],
  maxTokens: 500,
  temperature: 0.8,
  seed,
  cache: false,
});

it('streams on a gpu-server killed under them go on on the other, each to the text its seed makes, billed once', async () => {
  const seeds = [11, 12, 13, 14, 15, undefined];
  const callers = seeds.map(() => caller());
  const streams = await Promise.all(seeds.map((seed, i) => completions.stream(callers[i], input(i, seed))));
  const chunks: CompletionChunk[][] = streams.map(() => []);
  const read = streams.map(async (stream, i) => {
    for await (const chunk of stream) chunks[i].push(chunk);
  });
  // Once every stream has text, the endpoint holding the most of them is killed.
  while (chunks.some((c) => c.length === 0)) await sleep(5);
  const victim = [...tier.endpoints].sort((a, b) => b.inFlight - a.inFlight)[0];
  expect(victim.inFlight).toBeGreaterThan(0);
  gpus.find((g) => g.address === victim.address)!.child.kill('SIGKILL');
  await Promise.all(read);
  // Some of the seeded streams were among those restarted, so their text below is checked across the restart.
  expect(chunks.filter((c, i) => seeds[i] !== undefined && restarted.includes(c[0].id)).length).toBeGreaterThan(0);

  for (const [i, streamed] of chunks.entries()) {
    const end = streamed.at(-1)!;
    expect({ i, error: end.error, reason: end.finishReason }).toEqual({ i, error: null, reason: expect.stringMatching(/^(STOP|LENGTH)$/) });
    // No text twice, none missing: each chunk begins where the text before it ended.
    let text = '';
    for (const chunk of streamed) {
      expect({ i, offset: chunk.offset }).toEqual({ i, offset: text.length });
      text += chunk.delta;
    }
    const seed = seeds[i];
    if (seed !== undefined) {
      const uncut = await completions.complete(caller(), input(i, seed));
      expect({ i, text }).toEqual({ i, text: uncut.text });
      expect({ i, completionTokens: end.usage!.completionTokens }).toEqual({ i, completionTokens: uncut.usage.completionTokens });
    }
  }

  // One usage event per stream, with the usage its last chunk showed (the restarted run's whole count).
  expect(await metering.drain(10_000)).toBe(true);
  const events = (await redis.xrange(USAGE_EVENTS_STREAM, '-', '+')).map(([, fields]) => decodeUsageEvent(fields));
  for (const [i, who] of callers.entries()) {
    const mine = events.filter((e) => e.userId === who.identity.sub);
    expect({ i, billed: mine.map((e) => [e.promptTokens, e.completionTokens]) }).toEqual({ i, billed: [[chunks[i].at(-1)!.usage!.promptTokens, chunks[i].at(-1)!.usage!.completionTokens]] });
  }
}, 120_000);
