/**
 * The inference router against three gpu-server PROCESSES (node --import tsx
 * gpu-server/main.ts) serving overlapping model sets:
 *   A: sluice-chat + sluice-embed
 *   B: sluice-chat-batch + sluice-embed
 *   C: sluice-chat + sluice-chat-batch + sluice-embed
 * with the inference side's GPU tier, catalog and batchers in this process.
 * Routing follows the models; 300 concurrent requests spread so that no
 * endpoint takes more than half (read from each server's ModelStatistics);
 * killing C under load loses no request that had not started and ends its
 * started streams with a transport error (which completions.ts turns into
 * finishReason ERROR); C rejoins after a restart.
 */
import { rmSync } from 'node:fs';
import { createLogger } from '../lib/log';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { PROJECT_REPOSITORY } from '../gpu-server/testing/temp-repository';
import { BatchGenerator } from '../subgraphs/inference/completions/batch-generator';
import { EmbeddingBatcher } from '../subgraphs/inference/embeddings/embedding-batcher';
import { GpuTier } from '../subgraphs/inference/gpu-tier/gpu-tier';
import { ModelCatalog, type ModelInfo } from '../subgraphs/inference/models/model-catalog';
import { inferenceCount as inferences, repositoryOf, startGpuProcess, stopGpuProcess, type GpuProcess } from './support/gpu-processes';
import { runStream as runTierStream } from './support/tier-streams';

const SETS = { A: ['sluice-chat', 'sluice-embed'], B: ['sluice-chat-batch', 'sluice-embed'], C: ['sluice-chat', 'sluice-chat-batch', 'sluice-embed'] } as const;
type Name = keyof typeof SETS;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let repositories: Record<Name, string>;
let gpus: Record<Name, GpuProcess>;
let tier: GpuTier;
let catalog: ModelCatalog;
const log = createLogger({ service: 'router-e2e' });

beforeAll(async () => {
  await buildModels(PROJECT_REPOSITORY);
  repositories = { A: repositoryOf(SETS.A, 'router-A'), B: repositoryOf(SETS.B, 'router-B'), C: repositoryOf(SETS.C, 'router-C') };
  const started = await Promise.all((Object.keys(SETS) as Name[]).map((name) => startGpuProcess(repositories[name])));
  gpus = { A: started[0], B: started[1], C: started[2] };
  tier = new GpuTier({ endpoints: [gpus.A.address, gpus.B.address, gpus.C.address], deadlineMs: 30_000, log, probeIntervalMs: 200, backoffMs: 1, failureThreshold: 3, cooldownMs: 1_000 });
  catalog = new ModelCatalog(tier, 0);
}, 120_000);

afterAll(async () => {
  tier?.close();
  await Promise.all(Object.values(gpus ?? {}).map((g) => stopGpuProcess(g)));
  for (const dir of Object.values(repositories ?? {})) rmSync(dir, { recursive: true, force: true });
});

const embedModel = () => catalog.get('sluice-embed') as Promise<ModelInfo>;

it('routing follows the models: each model goes only to the endpoints that serve it', async () => {
  const models = await catalog.list();
  for (const id of ['sluice-chat', 'sluice-chat-batch', 'sluice-embed']) expect(models.find((m) => m.id === id)).toMatchObject({ ready: true });
  const where = (model: string) =>
    tier
      .endpointsOf(model)
      .filter((e) => e.ready)
      .map((e) => e.address);
  expect(where('sluice-chat')).toEqual([gpus.A.address, gpus.C.address]);
  expect(where('sluice-chat-batch')).toEqual([gpus.B.address, gpus.C.address]);
  expect(where('sluice-embed')).toEqual([gpus.A.address, gpus.B.address, gpus.C.address]);

  const batchModel = (await catalog.get('sluice-chat-batch'))!;
  const before = await Promise.all([gpus.A, gpus.B, gpus.C].map((g) => inferences(g.address, 'sluice-chat-batch')));
  const batches = new BatchGenerator(tier, 0, 30_000); // no coalescing: one call per prompt, each routed
  const outputs = await Promise.all(Array.from({ length: 6 }, (_, i) => batches.generate(batchModel, `hello ${i}`, { max_tokens: 4, temperature: 0, top_p: 1 })));
  expect(outputs.every((o) => typeof o.text === 'string')).toBe(true);
  const after = await Promise.all([gpus.A, gpus.B, gpus.C].map((g) => inferences(g.address, 'sluice-chat-batch')));
  const delta = after.map((n, i) => n - before[i]);
  expect(delta[0]).toBe(0); // A does not serve it
  expect(delta[1] + delta[2]).toBe(6);
  expect(delta[1]).toBeGreaterThan(0);
  expect(delta[2]).toBeGreaterThan(0);
}, 60_000);

it('300 concurrent requests over three endpoints serving the model: none takes more than half', async () => {
  const model = await embedModel();
  const embedder = new EmbeddingBatcher(tier, 0); // one GPU call per request, so each one is routed
  const before = await Promise.all([gpus.A, gpus.B, gpus.C].map((g) => inferences(g.address, 'sluice-embed')));
  const vectors = await Promise.all(Array.from({ length: 300 }, (_, i) => embedder.embed(model, [`text number ${i}`])));
  expect(vectors).toHaveLength(300);
  const after = await Promise.all([gpus.A, gpus.B, gpus.C].map((g) => inferences(g.address, 'sluice-embed')));
  const delta = after.map((n, i) => n - before[i]);
  expect(delta.reduce((a, b) => a + b, 0)).toBe(300);
  for (const n of delta) expect(n).toBeLessThanOrEqual(150);
}, 60_000);

const runStream = (model: ModelInfo, i: number, maxTokens: number) => runTierStream(tier, model, i, maxTokens);

it('killing an endpoint under load fails no embedding (those in flight on it run again elsewhere), ends its started streams with an error, and it rejoins after a restart', async () => {
  const chat = (await catalog.get('sluice-chat'))!;
  const embed = await embedModel();
  const embedder = new EmbeddingBatcher(tier, 0);

  // Load: streams on A and C, and a steady flow of embeddings on all three.
  const streams = Array.from({ length: 8 }, (_, i) => runStream(chat, i, 400));
  const embedResults: Array<{ issuedAfterKill: boolean; error?: unknown }> = [];
  let killed = false;
  let stopFlow = false;
  const flow = (async () => {
    const pending: Array<Promise<void>> = [];
    for (let i = 0; !stopFlow; i++) {
      const issuedAfterKill = killed;
      pending.push(
        embedder.embed(embed, [`flow ${i}`]).then(
          () => void embedResults.push({ issuedAfterKill }),
          (error: unknown) => void embedResults.push({ issuedAfterKill, error }),
        ),
      );
      await sleep(5);
    }
    await Promise.all(pending);
  })();

  // Kill C once every stream placed on it is generating.
  const onC = () => streams.map((s) => s.live()).filter((s) => s.endpoint === gpus.C.address);
  expect(onC().length).toBeGreaterThan(0);
  while (!onC().every((s) => s.responses > 0 || s.done)) await sleep(10);
  const liveOnC = onC().filter((s) => !s.done).length;
  gpus.C.child.kill('SIGKILL');
  // Once C's started streams have failed, this process has seen the connection drop: from then on
  // nothing can have reached C.
  await Promise.all(streams.filter((s) => s.live().endpoint === gpus.C.address).map((s) => s.outcome));
  killed = true;
  // Streams started now: the router still takes C for ready until a poll says otherwise, so some go to C and move.
  const lateStreams = Array.from({ length: 6 }, (_, i) => runStream(chat, 100 + i, 8));
  await sleep(1_000);
  stopFlow = true;
  await flow;

  const outcomes = await Promise.all(streams.map((s) => s.outcome));
  const endedOnC = outcomes.filter((o) => o.endpoint === gpus.C.address && !o.final);
  expect(endedOnC.length).toBe(liveOnC);
  for (const o of endedOnC) expect(o.error).toMatchObject({ transport: true });
  for (const o of outcomes.filter((o) => o.endpoint !== gpus.C.address)) expect(o.final).toBe(true);
  // Every stream started after the kill completed, on A.
  for (const o of await Promise.all(lateStreams.map((s) => s.outcome))) expect(o).toMatchObject({ final: true, endpoint: gpus.A.address });
  // No embedding failed: one issued after the kill went elsewhere, and one in flight on C when it died (its
  // connection dropped, its answer delivered to no one) ran again on another endpoint.
  expect(embedResults.filter((r) => r.issuedAfterKill).length).toBeGreaterThan(20);
  expect(embedResults.filter((r) => r.error)).toEqual([]);

  // Restart C on the same ports: it rejoins by itself once a poll reaches it.
  gpus.C = await startGpuProcess(repositories.C, gpus.C.ports);
  const c = tier.endpoints.find((e) => e.address === gpus.C.address)!;
  while (!c.usableFor('sluice-embed')) await sleep(100);
  const before = await inferences(gpus.C.address, 'sluice-embed');
  await Promise.all(Array.from({ length: 30 }, (_, i) => embedder.embed(embed, [`back ${i}`])));
  expect((await inferences(gpus.C.address, 'sluice-embed')) - before).toBeGreaterThan(0);
}, 120_000);

it('a whole generation in flight on an endpoint killed under it runs again on another and is answered', async () => {
  const batchModel = (await catalog.get('sluice-chat-batch'))!;
  const c = tier.endpoints.find((e) => e.address === gpus.C.address)!;
  while (!c.usableFor('sluice-chat-batch')) await sleep(100);
  const batches = new BatchGenerator(tier, 0, 30_000); // one call per prompt, each routed: B and C share them
  // Long enough to be mid-generation at the kill.
  const generations = Array.from({ length: 4 }, (_, i) => batches.generate(batchModel, `a long story ${i}`, { max_tokens: 400, temperature: 0, top_p: 1 }));
  while (c.inFlight === 0) await sleep(5);
  await sleep(100);
  const onC = c.inFlight;
  gpus.C.child.kill('SIGKILL');
  // Their connection dropped with no answer delivered: each runs again on B.
  const outputs = await Promise.all(generations);
  expect(onC).toBeGreaterThan(0);
  for (const output of outputs) expect(output.text.length).toBeGreaterThan(0);
  gpus.C = await startGpuProcess(repositories.C, gpus.C.ports);
}, 120_000);
