/**
 * The GPU tier with several endpoints, against real gpu-servers over gRPC on
 * loopback, serving overlapping model sets: the merged index, routing that
 * follows the models, no outage when one dies, an endpoint that never answers
 * skipped rather than waited on, and a restarted endpoint rejoining by itself.
 */
import { rmSync } from 'node:fs';
import { createLogger } from '../../../lib/log';
import { freePort } from '../../../scripts/free-port';
import { encodeBytesTensor } from '../../../protocol/triton/bytes-tensor';
import { addEmbedVariant, makeEmbedRepository } from '../../../gpu-server/testing/temp-repository';
import { startGpuServer, type GpuServer } from '../../../gpu-server/server';
import { GpuTier } from './gpu-tier';
import { ModelCatalog } from '../models/model-catalog';

const log = createLogger({ service: 'gpu-tier-test' });
let repositories: string[];
let servers: GpuServer[];
let deadPort: number;

const start = (repository: string, grpcPort = 0) => startGpuServer({ repository, host: '127.0.0.1', grpcPort, httpPort: 0, metricsPort: 0 });

beforeAll(async () => {
  // Both serve tier-embed; only the first serves only-a, only the second only-b.
  repositories = await Promise.all([
    makeEmbedRepository([
      { name: 'tier-embed', maxBatchSize: 8 },
      { name: 'only-a', maxBatchSize: 8 },
    ]),
    makeEmbedRepository([
      { name: 'tier-embed', maxBatchSize: 8 },
      { name: 'only-b', maxBatchSize: 8 },
    ]),
  ]);
  servers = await Promise.all(repositories.map((r) => start(r)));
  deadPort = await freePort(); // nothing listens here
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  for (const r of repositories) rmSync(r, { recursive: true, force: true });
});

const embedOne = (tier: GpuTier, text: string, model = 'tier-embed') =>
  tier.modelInfer({ model_name: model, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1] }], raw_input_contents: [encodeBytesTensor([text])] });

const executions = (server: GpuServer, model = 'tier-embed') => server.core.statistics(model).reduce((n, s) => n + Number(s.execution_count), 0);

const tierOf = (endpoints: string[], options: Partial<ConstructorParameters<typeof GpuTier>[0]> = {}) =>
  new GpuTier({ endpoints, deadlineMs: 5_000, log, probeIntervalMs: 100, backoffMs: 1, ...options });

it('merges the endpoints into one index, and routes each model only to endpoints that serve it', async () => {
  const tier = tierOf([`127.0.0.1:${servers[0].grpcPort}`, `127.0.0.1:${servers[1].grpcPort}`]);
  try {
    const catalog = new ModelCatalog(tier, 60_000);
    const models = await catalog.list();
    expect(models.map((m) => [m.id, m.ready, m.kind, m.maxBatchSize])).toEqual([
      ['only-a', true, 'EMBEDDING', 8],
      ['only-b', true, 'EMBEDDING', 8],
      ['tier-embed', true, 'EMBEDDING', 8],
    ]);
    const before = [executions(servers[0], 'only-a'), executions(servers[1], 'only-b')];
    for (let i = 0; i < 4; i++) await Promise.all([embedOne(tier, `a ${i}`, 'only-a'), embedOne(tier, `b ${i}`, 'only-b')]);
    expect([executions(servers[0], 'only-a') - before[0], executions(servers[1], 'only-b') - before[1]]).toEqual([4, 4]);
    expect(tier.endpointsOf('only-a').map((e) => e.address)).toEqual([`127.0.0.1:${servers[0].grpcPort}`]);
    await expect(embedOne(tier, 'x', 'nowhere')).rejects.toMatchObject({ code: 'MODEL_NOT_FOUND' });
  } finally {
    tier.close();
  }
});

it('spreads calls over ready endpoints and skips one that is down', async () => {
  const tier = tierOf([`127.0.0.1:${servers[0].grpcPort}`, `127.0.0.1:${deadPort}`, `127.0.0.1:${servers[1].grpcPort}`]);
  try {
    expect(await tier.isReady()).toBe(true);
    expect(tier.endpoints.map((e) => e.reachable)).toEqual([true, false, true]);
    const before = servers.map((s) => executions(s));
    for (let i = 0; i < 20; i++) await embedOne(tier, `text ${i}`);
    const after = servers.map((s) => executions(s));
    expect(after[0] - before[0]).toBe(10);
    expect(after[1] - before[1]).toBe(10);
  } finally {
    tier.close();
  }
});

it('keeps serving when an endpoint dies: calls that never started move to the other one; it rejoins when it is back', async () => {
  const spareRepository = await makeEmbedRepository([{ name: 'tier-embed', maxBatchSize: 8 }]);
  addEmbedVariant(spareRepository, { name: 'only-spare', maxBatchSize: 8 });
  let spare = await start(spareRepository);
  const port = spare.grpcPort;
  // The probe must not hide the failure at first: the retry path has to handle it.
  const tier = tierOf([`127.0.0.1:${port}`, `127.0.0.1:${servers[0].grpcPort}`], { probeIntervalMs: 60_000, failureThreshold: 1 });
  try {
    await tier.isReady();
    await embedOne(tier, 'warm up');
    await spare.stop();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => embedOne(tier, `after ${i}`)));
    expect(results).toHaveLength(10);
    expect(tier.endpoints[0].reachable).toBe(false);
    // Served only by the dead endpoint: not ready anywhere, with a retry hint.
    await expect(embedOne(tier, 'x', 'only-spare')).rejects.toMatchObject({ code: 'MODEL_NOT_READY', retryAfter: 60 });
    const merged = await tier.repositoryIndex();
    expect(merged.models.find((m) => m.name === 'only-spare')).toMatchObject({ state: 'UNAVAILABLE', reason: `127.0.0.1:${port}: not answering` });

    spare = await start(spareRepository, port);
    // Polls, as the interval would do, until the channel's reconnect backoff lets one through.
    while (!(await tier.isReady()) || !tier.endpoints[0].reachable) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(tier.endpoints[0].breaker.state).toBe('closed');
    const before = executions(spare);
    for (let i = 0; i < 6; i++) await embedOne(tier, `back ${i}`);
    expect(executions(spare) - before).toBe(3);
    await embedOne(tier, 'y', 'only-spare');
  } finally {
    tier.close();
    await spare.stop();
    rmSync(spareRepository, { recursive: true, force: true });
  }
});

it('says which endpoints are unusable when none can take the call', async () => {
  const tier = tierOf([`127.0.0.1:${deadPort}`], { deadlineMs: 1_000 });
  try {
    expect(await tier.isReady()).toBe(false);
    expect(() => tier.pick('tier-embed')).toThrow(new RegExp(`model "tier-embed" is listed by no GPU endpoint that has answered, and 127\\.0\\.0\\.1:${deadPort} has not answered yet`));
    await expect(tier.repositoryIndex()).rejects.toMatchObject({ code: 'GPU_UNAVAILABLE' });
  } finally {
    tier.close();
  }
});
