/**
 * The GPU tier with several endpoints, against real gpu-servers over gRPC on
 * loopback: round-robin across ready endpoints, no outage when one dies, and
 * an endpoint that never answers is skipped rather than waited on.
 */
import { rmSync } from 'node:fs';
import { createLogger } from '../../../lib/log';
import { freePort } from '../../../scripts/free-port';
import { encodeBytesTensor } from '../../../gpu-server/protocol/bytes-tensor';
import { makeEmbedRepository } from '../../../gpu-server/repository/temp-repository';
import { startGpuServer, type GpuServer } from '../../../gpu-server/server';
import { GpuTier } from '../gpu-tier';

let repository: string;
let servers: GpuServer[];
let deadPort: number;

beforeAll(async () => {
  repository = await makeEmbedRepository([{ name: 'tier-embed', maxBatchSize: 8 }]);
  servers = await Promise.all([0, 1].map(() => startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0 })));
  deadPort = await freePort(); // nothing listens here
}, 60_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(repository, { recursive: true, force: true });
});

const embedOne = (tier: GpuTier, text: string) =>
  tier.modelInfer({ model_name: 'tier-embed', inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1] }], raw_input_contents: [encodeBytesTensor([text])] });

const executions = (server: GpuServer) => server.core.statistics('tier-embed').reduce((n, s) => n + Number(s.execution_count), 0);

it('spreads calls round-robin over ready endpoints and skips one that is down', async () => {
  const tier = new GpuTier({
    endpoints: [`127.0.0.1:${servers[0].grpcPort}`, `127.0.0.1:${deadPort}`, `127.0.0.1:${servers[1].grpcPort}`],
    deadlineMs: 5_000,
    log: createLogger({ service: 'gpu-tier-test' }),
    probeIntervalMs: 100,
    backoffMs: 1,
  });
  try {
    expect(await tier.isReady()).toBe(true);
    expect(tier.endpoints.map((e) => e.ready)).toEqual([true, false, true]);
    const before = servers.map(executions);
    for (let i = 0; i < 20; i++) await embedOne(tier, `text ${i}`);
    const after = servers.map(executions);
    expect(after[0] - before[0]).toBe(10);
    expect(after[1] - before[1]).toBe(10);
  } finally {
    tier.close();
  }
});

it('keeps serving when an endpoint dies: calls that never started move to the other one', async () => {
  const spare = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0 });
  const tier = new GpuTier({
    endpoints: [`127.0.0.1:${spare.grpcPort}`, `127.0.0.1:${servers[0].grpcPort}`],
    deadlineMs: 5_000,
    log: createLogger({ service: 'gpu-tier-test' }),
    probeIntervalMs: 60_000, // the probe must not hide the failure: the retry path has to handle it
    backoffMs: 1,
    failureThreshold: 1,
  });
  try {
    await embedOne(tier, 'warm up');
    await spare.stop();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => embedOne(tier, `after ${i}`)));
    expect(results).toHaveLength(10);
    expect(tier.endpoints[0].breaker.state).not.toBe('closed');
  } finally {
    tier.close();
  }
});

it('says which endpoints are unusable when none can take the call', async () => {
  const tier = new GpuTier({
    endpoints: [`127.0.0.1:${deadPort}`],
    deadlineMs: 1_000,
    log: createLogger({ service: 'gpu-tier-test' }),
    probeIntervalMs: 100,
  });
  try {
    expect(await tier.isReady()).toBe(false);
    expect(() => tier.pick()).toThrow(new RegExp(`no GPU endpoint can take the call \\(127\\.0\\.0\\.1:${deadPort} not ready\\)`));
  } finally {
    tier.close();
  }
});
