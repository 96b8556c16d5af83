/**
 * GPU endpoints discovered through DNS (issue 18), the way a Kubernetes
 * headless Service publishes its pods: two real gpu-servers on the same port
 * of 127.0.0.1 and 127.0.0.2 (A records carry no port), and a real DNS server
 * on loopback whose answer the test changes under load. The pod that leaves
 * the answer finishes the streams it had started and gets no new work; the
 * pod that joins takes the load; a DNS server that stops answering changes
 * nothing; no request fails.
 */
import { rmSync } from 'node:fs';
import { createLogger } from '../lib/log';
import { freePort } from '../scripts/free-port';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { startGpuServer, type GpuServer } from '../gpu-server/server';
import { PROJECT_REPOSITORY } from '../gpu-server/testing/temp-repository';
import { EmbeddingBatcher } from '../subgraphs/inference/embeddings/embedding-batcher';
import { GpuTier } from '../subgraphs/inference/gpu-tier/gpu-tier';
import { ModelCatalog, type ModelInfo } from '../subgraphs/inference/models/model-catalog';
import { startDnsServer, type TestDnsServer } from '../subgraphs/inference/testing/dns-server';
import { inferenceCount, repositoryOf } from './support/gpu-processes';
import { runStream as runTierStream } from './support/tier-streams';

const NAME = 'triton-headless.sluice.test';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const log = createLogger({ service: 'gpu-dns-e2e' });

let repository: string;
let port: number;
let gpus: GpuServer[];
let dns: TestDnsServer;
let tier: GpuTier;
let catalog: ModelCatalog;
const A = () => `127.0.0.1:${port}`;
const B = () => `127.0.0.2:${port}`;

beforeAll(async () => {
  await buildModels(PROJECT_REPOSITORY);
  repository = repositoryOf(['sluice-chat', 'sluice-embed'], 'gpu-dns');
  port = await freePort();
  gpus = await Promise.all(['127.0.0.1', '127.0.0.2'].map((host) => startGpuServer({ repository, host, grpcPort: port, httpPort: 0, metricsPort: 0 })));
  dns = await startDnsServer();
  dns.answer(NAME, ['127.0.0.1']);
  tier = new GpuTier({ endpoints: [`dns://${dns.address}/${NAME}:${port}`], dnsRefreshMs: 100, deadlineMs: 30_000, log, probeIntervalMs: 200, backoffMs: 1 });
  catalog = new ModelCatalog(tier, 0);
}, 120_000);

afterAll(async () => {
  tier?.close();
  await dns?.stop();
  await Promise.all((gpus ?? []).map((g) => g.stop()));
  if (repository) rmSync(repository, { recursive: true, force: true });
});

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (condition()) return;
    await sleep(20);
  }
  throw new Error(`${what}: still not so after 6 s (endpoints: ${tier.endpoints.map((e) => e.address).join(', ') || 'none'})`);
}

const runStream = (model: ModelInfo, i: number, maxTokens: number) => runTierStream(tier, model, i, maxTokens);

it('follows the DNS answer under load: the pod that leaves finishes its streams, the pod that joins takes the work, and no request fails', async () => {
  await until(() => tier.endpoints.length === 1 && tier.endpoints[0].usableFor('sluice-chat') && tier.endpoints[0].usableFor('sluice-embed'), 'endpoint A ready');
  const chat = (await catalog.get('sluice-chat'))!;
  const embed = (await catalog.get('sluice-embed'))!;
  const embedder = new EmbeddingBatcher(tier, 0); // one GPU call per request, so each one is routed

  // A steady flow of embeddings through every change below.
  const failures: unknown[] = [];
  let completed = 0;
  let stopFlow = false;
  const flow = (async () => {
    const pending: Array<Promise<void>> = [];
    for (let i = 0; !stopFlow; i++) {
      pending.push(
        embedder.embed(embed, [`flow ${i}`]).then(
          () => void completed++,
          (error: unknown) => void failures.push(error),
        ),
      );
      await sleep(5);
    }
    await Promise.all(pending);
  })();

  // Long streams on A, generating when its pod leaves the answer and B's joins.
  const early = Array.from({ length: 4 }, (_, i) => runStream(chat, i, 400));
  await until(() => early.every((s) => s.live().responses > 0), 'the first streams generating');
  expect(early.map((s) => s.live().endpoint)).toEqual([A(), A(), A(), A()]);
  dns.answer(NAME, ['127.0.0.2']);
  await until(() => tier.endpoints.map((e) => e.address).join() === B() && tier.endpoints[0].usableFor('sluice-embed'), 'B in, A out');
  expect(early.filter((s) => !s.live().done).length).toBeGreaterThan(0); // A is draining, not done
  const late = Array.from({ length: 4 }, (_, i) => runStream(chat, 10 + i, 8));

  // A finishes what it had started, on the connection it had; nothing new reaches it.
  const earlyOutcomes = await Promise.all(early.map((s) => s.outcome));
  for (const o of earlyOutcomes) expect(o).toMatchObject({ endpoint: A(), final: true });
  const aDone = await inferenceCount(A(), 'sluice-embed');
  const bBefore = await inferenceCount(B(), 'sluice-embed');
  await sleep(500);
  expect(await inferenceCount(A(), 'sluice-embed')).toBe(aDone);
  expect(await inferenceCount(B(), 'sluice-embed')).toBeGreaterThan(bBefore);
  for (const o of await Promise.all(late.map((s) => s.outcome))) expect(o).toMatchObject({ endpoint: B(), final: true });

  // The DNS server goes silent: the list stays, requests are not held up by the resolutions timing out.
  dns.answer(NAME, 'silent');
  const silentFrom = completed;
  const failuresBefore = tier.dnsNames[0].failures;
  await until(() => tier.dnsNames[0].failures > failuresBefore, 'a silent resolution counted');
  expect(tier.endpoints.map((e) => e.address)).toEqual([B()]);
  expect(completed - silentFrom).toBeGreaterThan(20);

  // Both pods in the answer: A rejoins and takes work again.
  dns.answer(NAME, ['127.0.0.2', '127.0.0.1']);
  await until(() => tier.endpoints.length === 2 && tier.endpoints.every((e) => e.usableFor('sluice-embed')), 'A back beside B');
  const aBack = await inferenceCount(A(), 'sluice-embed');
  await sleep(500);
  stopFlow = true;
  await flow;
  expect(await inferenceCount(A(), 'sluice-embed')).toBeGreaterThan(aBack);
  expect(failures).toEqual([]);
  expect(completed).toBeGreaterThan(100);
}, 120_000);
