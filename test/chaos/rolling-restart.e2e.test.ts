/**
 * Zero-downtime restarts (issues 21 and 18): two replicas of every service,
 * each tier behind one round-robin address as behind a Kubernetes Service,
 * restarted one replica at a time (SIGTERM, drain, start, wait for /ready)
 * under a steady mixed load. No query or completion may fail; a stream may
 * end early only with a coded error that tells its client to retry; money is
 * exact afterwards. bench/chaos.ts reports the same rollout's figures.
 */
import { type ChaosStack, type LoadMix, rollingRestart, runScenario, signUpUsers, startChaosStack } from './harness';

let chaos: ChaosStack;

const MIX: LoadMix = { queryClients: 3, completionClients: 2, streamClients: 2, streamTokens: 60, pauseMs: 25 };

beforeAll(async () => {
  chaos = await startChaosStack({ gpuServers: 1, replicated: true });
}, 400_000);

afterAll(async () => {
  await chaos?.stop();
}, 120_000);

it('a rolling restart of every service fails no query and no completion; streams end with a coded retryable error; money exact', async () => {
  const users = await signUpUsers(chaos, 3, 'chaos-rolling');
  const result = await runScenario(
    chaos,
    {
      name: 'rolling restart',
      affects: [],
      gpuCountsSurvive: false,
      inject: (c) => rollingRestart(c.replicas!),
      recover: async () => undefined,
    },
    { beforeMs: 1_000, outageMs: 0, afterMs: 1_000 },
    MIX,
    users,
  );
  const failed = result.outcomes.filter((o) => !o.ok);
  const describe = (o: (typeof failed)[number]) => `${o.kind}@${o.start - result.faultAt}ms+${o.end - o.start}ms ${[...o.codes, ...o.reasons].join(',')} ${o.parts.join(',')}`;
  const context = failed.map(describe).join('\n');

  expect(result.outcomes.filter((o) => o.kind === 'query' && o.start >= result.faultAt && o.start < result.readyAt).length).toBeGreaterThan(0);
  expect({ failed: failed.filter((o) => o.kind !== 'stream').map(describe), context }).toEqual({ failed: [], context });
  for (const stream of failed.filter((o) => o.kind === 'stream')) {
    expect({ codes: stream.codes, context }).toEqual({ codes: [expect.stringMatching(/^(SERVICE_UNAVAILABLE|GPU_UNAVAILABLE)$/)], context });
  }
  expect({ money: result.money, context }).toEqual({ money: expect.objectContaining({ exact: true }), context });
}, 900_000);
