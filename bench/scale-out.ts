/**
 * The scale-out figure (issue 18, point 6): one process of each service on one
 * Redis against two gateway processes, two replicas of each subgraph and three
 * gpu-servers on a Redis Cluster of three masters and three replicas, all on
 * loopback, under the same mixed load (queries, completions, streams) from
 * this process: requests/s and p99 side by side. Then, in the scaled stack,
 * one replica of each tier is killed (SIGKILL: a node lost, nothing drained)
 * and restarted in turn under load, counting the requests that failed. The
 * load's stream clients resume a cut stream (completionStream's streamKey and
 * resumeAt), as the API lets a client do; each fault's row says how many were
 * cut and resumed, and by what. A stream in flight on the killed gpu-server
 * that still ends (its resumes used up) is allowed if its error is coded.
 *
 * Replicas sit behind round-robin TCP proxies (test/support/replicated-stack.ts),
 * what a Kubernetes Service is to the gateway (one URL per subgraph), to
 * inference (billing's URL), to knowledge (inference's) and to the client
 * (the gateways).
 *
 *   npx tsx bench/scale-out.ts [measure seconds per shape, default 20] [outage seconds per fault, default 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { ErrorCode } from '../lib/errors';
import { startRedisServer } from '../scripts/redis-server';
import { startStack, type ServiceName, type Stack, type StackPorts } from '../scripts/stack';
import { busiestGpuEndpoint, Load, QUERY_PARTS, signUpUsers, sleep, STREAM_ATTEMPTS, type LoadMix, type Outcome, type Part } from '../test/chaos/harness';
import { startRedisCluster, type RedisCluster } from '../test/support/redis-cluster';
import { startReplicatedStack, SUBGRAPHS, type ReplicatedStack } from '../test/support/replicated-stack';
import { freeStackPorts } from '../test/support/stack';
import { loadNote, percentile, recordResult } from './results';

const MEASURE_MS = Number(process.argv[2] ?? 20) * 1_000;
const OUTAGE_MS = Number(process.argv[3] ?? 3) * 1_000;
/** Load before the measured window (connections, JIT, model warm-up) and after each fault's replica is back. */
const WARMUP_MS = 3_000;
const SETTLE_MS = 2_000;
// Six stream clients over three gpu-servers: some stream is in flight on whichever is lost.
const MIX: LoadMix = { queryClients: 8, completionClients: 3, streamClients: 6, streamTokens: 120, pauseMs: 0, resumeStreams: true };
const USERS = 12;
const ENV = {
  SLUICE_LOG_LEVEL: 'warn',
  // Two gateway replicas are two processes, not two workers of one.
  GATEWAY_WORKERS: '1',
  // Every query reaches the subgraphs: a cached whole answer would measure the cache, and hide a lost replica.
  GATEWAY_RESPONSE_CACHE: 'false',
  GATEWAY_SUBSCRIPTIONS_PER_USER: '64',
  BILLING_FREE_CREDIT_MICROS: String(10 ** 12),
};
const CODES = new Set<string>(Object.values(ErrorCode));

interface Shape {
  gatewayUrl: string;
  stop(): Promise<void>;
}

const logs: string[] = [];
const onLine = (service: string, line: string) => {
  logs.push(`[${service}] ${line}`);
  if (process.env.SLUICE_TEST_LOGS === '1') process.stdout.write(`[${service}] ${line}\n`);
};

async function launch(ports: StackPorts, redisUrl: string, dataDir: string, env: Record<string, string>): Promise<Stack> {
  try {
    return await startStack({ ports, redisUrl, dataDir, host: '127.0.0.1', env: { ...ENV, ...env }, onLine, startTimeoutMs: 180_000 });
  } catch (error) {
    process.stderr.write(`a stack failed to start; its output:\n${logs.join('\n')}\n`);
    throw error;
  }
}

async function startSingle(dataDir: string): Promise<Shape> {
  const redis = await startRedisServer(path.join(dataDir, 'redis'), (line) => onLine('redis', line));
  const stack = await launch(await freeStackPorts(), redis.url, dataDir, { SLUICE_GPU_SERVERS: '1' }).catch(async (error) => {
    await redis.stop();
    throw error;
  });
  return {
    gatewayUrl: stack.gatewayUrl,
    stop: async () => {
      await stack.stop();
      await redis.stop();
    },
  };
}

interface Scaled extends Shape, ReplicatedStack {
  cluster: RedisCluster;
}

/** Replica A runs one gpu-server, replica B two; faults strike B's services. */
async function startScaled(dataDir: string): Promise<Scaled> {
  const cluster = await startRedisCluster();
  try {
    const replicas = await startReplicatedStack({ redisUrl: cluster.url, dataDir, gpuServers: { a: 1, b: 2 }, env: { ...ENV, REDIS_CLUSTER_NODES: cluster.nodeList }, onLine });
    return {
      ...replicas,
      cluster,
      stop: async () => {
        await replicas.stop();
        await cluster.stop();
      },
    };
  } catch (error) {
    process.stderr.write(`the replicated stack failed to start; its output:\n${logs.join('\n')}\n`);
    await cluster.stop();
    throw error;
  }
}

/**
 * What a SIGKILL costs by construction, whatever the retries: what was in
 * flight on the killed process. (A drained restart costs nothing: see the
 * rolling restart in bench/chaos.ts.)
 */
const BOUNDS = [
  'What a node loss still costs, by construction:',
  "- **a gateway**: the streams in flight on it are cut with it (WebSocket close 1006). The Service in front is TCP-level and cannot replay requests; the load's clients send a query that got no answer again, a completion again with its idempotency key (`complete(idempotencyKey:)`, `Idempotency-Key` on /v1), so it is answered once, generated and billed once, by whichever replica ran it, and resume a stream with its key (`completionStream(streamKey:, resumeAt:)`): the text is generated again from the stream's seed and only what the client lacks is sent, billed once over its runs.",
  "- **inference**: its streams in flight end with `SERVICE_UNAVAILABLE` (coded: subscribe again), which the clients resume on the other replica. A completion in flight on it fails with `SUBGRAPH_UNAVAILABLE` (`CONNECTION_FAILED`): it may have run, so the gateway does not send it again, but the client does, with its idempotency key: the other replica runs it once the lost one's lease on the key lapses (`INFERENCE_IDEMPOTENCY_LEASE_MS`, 15 s), or answers its result if it had finished.",
  '- **a gpu-server**: inference starts its streams again on a live gpu-server with their seed and sends on from where they were, with no word to the client; a stream whose restarts are used up ends with a coded `GPU_UNAVAILABLE` chunk, which a client may resume.',
  "- **a subgraph replica** (auth, billing, knowledge): a query in flight on it is retried on the other replica; a mutation in flight on it fails with `SUBGRAPH_UNAVAILABLE` (`CONNECTION_FAILED`), as a completion does; a call whose connection was refused is retried, mutations included. The gateway's breaker counts calls that failed after their retries, so one dead replica does not open it.",
];

interface Throughput {
  perSecond: number;
  queries: { perSecond: number; p50: number; p99: number };
  completions: { perSecond: number; p50: number; p99: number };
  streams: { perSecond: number; p50: number; p99: number };
  failed: number;
}

/** The load for WARMUP_MS, then MEASURE_MS measured: requests that started and ended inside the window. */
async function measure(shape: Shape, label: string): Promise<Throughput> {
  const users = await signUpUsers({ stack: shape }, USERS, label);
  const load = new Load(shape.gatewayUrl, users, MIX).start();
  await sleep(WARMUP_MS);
  const from = Date.now();
  await sleep(MEASURE_MS);
  const to = Date.now();
  const window = (await load.stop()).filter((o) => o.start >= from && o.end <= to);
  const seconds = (to - from) / 1_000;
  const of = (kind: Outcome['kind']) => {
    const latencies = window.filter((o) => o.kind === kind && o.ok).map((o) => o.end - o.start);
    return { perSecond: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  };
  return { perSecond: window.filter((o) => o.ok).length / seconds, queries: of('query'), completions: of('complete'), streams: of('stream'), failed: window.filter((o) => !o.ok).length };
}

interface Fault {
  name: string;
  /** Runs under the load before the fault's clock starts (choosing its victim), so that the kill is at the clock's start. */
  aim?(scaled: Scaled): Promise<void>;
  inject(scaled: Scaled): Promise<void>;
  /** Resolves once the replica is ready again. */
  recover(scaled: Scaled): Promise<void>;
}

const replicaLost = (stack: 'a' | 'b', service: ServiceName, name: string): Fault => ({
  name,
  inject: (scaled) => scaled[stack].kill(service, 'SIGKILL'),
  recover: (scaled) => scaled[stack].restart(service),
});

const GPU_FAULT = 'the gpu-server serving the streams (1 of 3)';

/**
 * The load's streams spread over the gpu-servers (the router keeps each
 * user's conversation where its prefix is cached, per inference replica): the
 * one lost is the one holding the most of both replicas' requests just
 * before the kill, so that streams are surely in flight on it.
 */
function streamingGpuLost(): Fault {
  let victim: Scaled['gpus'][number] | undefined;
  return {
    name: GPU_FAULT,
    aim: async (scaled) => {
      const address = await busiestGpuEndpoint(
        [scaled.a, scaled.b],
        scaled.gpus.map((gpu) => gpu.address),
      );
      victim = scaled.gpus.find((gpu) => gpu.address === address)!;
      process.stdout.write(`killing ${victim.stack}'s ${victim.name} (${address}), the gpu-server with the most requests in flight\n`);
    },
    inject: (scaled) => scaled[victim!.stack].kill(victim!.name, 'SIGKILL'),
    recover: (scaled) => scaled[victim!.stack].restart(victim!.name),
  };
}
const FAULTS: Fault[] = [
  replicaLost('b', 'gateway', 'a gateway (1 of 2)'),
  ...SUBGRAPHS.map((service) => replicaLost('b', service, `${service} (1 of 2)`)),
  streamingGpuLost(),
  {
    name: 'a Redis master (1 of 3; its replica takes over)',
    // Kill, failover, restart and rejoin as the new master's replica, all in one.
    inject: async (scaled) => scaled.cluster.loseMaster(await scaled.cluster.masterOf('gw:rl:{scale-out}')),
    recover: async () => undefined,
  },
];

interface FaultResult {
  name: string;
  /** Kill to replica ready again, ms. */
  downMs: number;
  requests: number;
  failed: Outcome[];
  /** Streams in flight when the gpu-server was killed that ended, their resumes used up, with a code of ErrorCode (allowed). */
  codedStreamEnds: Outcome[];
  /** Streams in flight at the kill (on any replica), how many of them finished, and what cut those that were resumed. */
  streamsAtKill: { inFlight: number; finished: number; cuts: string[] };
}

/** Every fault in turn under one load; each request is charged to the fault whose window (kill to ready + SETTLE_MS) it ended in. */
async function failover(scaled: Scaled): Promise<{ results: FaultResult[]; outside: Outcome[] }> {
  const users = await signUpUsers({ stack: scaled }, USERS, 'scale-fault');
  const load = new Load(scaled.gatewayUrl, users, MIX).start();
  await sleep(WARMUP_MS);
  const windows: { fault: Fault; killAt: number; readyAt: number; until: number }[] = [];
  for (const fault of FAULTS) {
    await fault.aim?.(scaled);
    const killAt = Date.now();
    await fault.inject(scaled);
    await sleep(OUTAGE_MS);
    await fault.recover(scaled);
    const readyAt = Date.now();
    await sleep(SETTLE_MS);
    windows.push({ fault, killAt, readyAt, until: Date.now() });
    process.stdout.write(`${fault.name}: down ${readyAt - killAt} ms\n`);
  }
  const outcomes = await load.stop();
  const inWindow = (o: Outcome, w: (typeof windows)[number]) => o.end >= w.killAt && o.end < w.until;
  const results = windows.map((w): FaultResult => {
    const mine = outcomes.filter((o) => inWindow(o, w));
    const atKill = outcomes.filter((o) => o.kind === 'stream' && o.start < w.killAt && o.end >= w.killAt);
    const expected = (o: Outcome) => w.fault.name === GPU_FAULT && o.kind === 'stream' && o.start < w.killAt && o.codes.length > 0 && o.codes.every((c) => CODES.has(c));
    return {
      name: w.fault.name,
      downMs: w.readyAt - w.killAt,
      requests: mine.length,
      failed: mine.filter((o) => !o.ok && !expected(o)),
      codedStreamEnds: mine.filter((o) => !o.ok && expected(o)),
      streamsAtKill: { inFlight: atKill.length, finished: atKill.filter((o) => o.ok).length, cuts: atKill.flatMap((o) => o.cuts ?? []) },
    };
  });
  const outside = outcomes.filter((o) => !o.ok && !windows.some((w) => inWindow(o, w)));
  return { results, outside };
}

const ms = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : '—');
const rate = (value: number) => value.toFixed(1);

/** "n: finished (k resumed after CODE × m)" for the streams in flight at a kill. */
function streamsAt({ inFlight, finished, cuts }: FaultResult['streamsAtKill']): string {
  const counts = new Map<string, number>();
  for (const cut of cuts) counts.set(cut, (counts.get(cut) ?? 0) + 1);
  const resumed = [...counts].map(([cut, n]) => `${cut} × ${n}`).join(', ');
  return `${inFlight}: ${finished}${resumed ? ` (resumed after ${resumed})` : ''}`;
}

function describe(failed: Outcome[]): string {
  if (failed.length === 0) return '—';
  const counts = new Map<string, number>();
  for (const o of failed) {
    const missing = o.kind === 'query' ? (Object.keys(QUERY_PARTS) as Part[]).filter((part) => !o.parts.includes(part)) : [];
    const key = `${o.kind} ${[...new Set(o.codes)].join('+') || 'no code'}${o.reasons.length ? ` (${[...new Set(o.reasons)].join(', ')})` : ''}${missing.length ? ` without ${missing.join(', ')}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => `${n} × ${key}`).join('; ');
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-scale-out-'));
  try {
    const single = await startSingle(path.join(dataDir, 'single'));
    const one = await measure(single, 'scale-one').finally(() => single.stop());
    process.stdout.write(`one of each: ${JSON.stringify(one)}\n`);
    const scaled = await startScaled(path.join(dataDir, 'scaled'));
    try {
      const two = await measure(scaled, 'scale-two');
      process.stdout.write(`scaled: ${JSON.stringify(two)}\n`);
      const { results, outside } = await failover(scaled);
      const failedTotal = results.reduce((n, r) => n + r.failed.length, 0) + outside.length;
      const row = (shape: string, t: Throughput) =>
        `| ${shape} | ${rate(t.perSecond)} | ${rate(t.queries.perSecond)} | ${ms(t.queries.p50)} / ${ms(t.queries.p99)} | ${rate(t.completions.perSecond)} | ${ms(t.completions.p50)} / ${ms(t.completions.p99)} | ${rate(t.streams.perSecond)} | ${ms(t.streams.p99)} | ${t.failed} |`;
      const body = [
        `The same load from the benchmark process on both shapes (${MIX.queryClients} query clients, ${MIX.completionClients} completion clients, ${MIX.streamClients} stream clients of ${MIX.streamTokens} tokens, no pause; ${USERS} users; the response cache off), ${MEASURE_MS / 1_000} s measured after ${WARMUP_MS / 1_000} s of warm-up. Rates and latencies count answered requests (a query with no error, a completion or stream ending STOP or LENGTH). Replicas sit behind round-robin TCP proxies standing in for Kubernetes Services (test/support/round-robin-proxy.ts: each connection to the next replica, a refusing replica skipped). Every process shares the machine's ${os.cpus().length} cores, so the scaled shape measures the cost of more processes and a cluster client more than added capacity: on separate nodes, each replica would bring its own cores.`,
        '',
        '| shape | answered/s | queries/s | query p50 / p99 | completions/s | completion p50 / p99 | streams/s | stream p99 | failed |',
        '|---|---|---|---|---|---|---|---|---|',
        row('1 gateway, 1 of each subgraph, 1 gpu-server, 1 Redis', one),
        row('2 gateways, 2 of each subgraph, 3 gpu-servers, Redis Cluster 3+3', two),
        '',
        `Node loss in the scaled shape, under the same load: one replica of each tier killed (SIGKILL), restarted ${OUTAGE_MS / 1_000} s later, ${SETTLE_MS / 1_000} s more load after it is ready, one tier after the other. A request is charged to the fault whose window (kill to ready + ${SETTLE_MS / 1_000} s) it ended in. Target: 0 failed, apart from streams in flight on the killed gpu-server, which must end with a coded error. The stream clients resume a cut stream with its key, as any client of the API may (up to ${STREAM_ATTEMPTS} subscriptions per stream): a cut a client resumed from is counted in the streams column, not as a failure.`,
        '',
        '| replica lost | kill → ready | requests ended in the window | failed | streams in flight at the kill: finished (what cut those resumed) | coded stream ends (gpu-server) | what failed |',
        '|---|---|---|---|---|---|---|',
        ...results.map(
          (r) =>
            `| ${r.name} | ${ms(r.downMs)} | ${r.requests} | ${r.failed.length} | ${streamsAt(r.streamsAtKill)} | ${r.name === GPU_FAULT ? r.codedStreamEnds.length : '—'} | ${describe(r.failed)} |`,
        ),
        '',
        `**${failedTotal === 0 ? 'Target met' : 'Target not met'}:** ${failedTotal} failed request(s) over the ${results.length} faults${outside.length ? ` (${outside.length} outside any fault's window: ${describe(outside)})` : ''}; streams on the killed gpu-server: ${results.find((r) => r.name === GPU_FAULT)?.codedStreamEnds.length ?? 0} ended with a coded error.`,
        '',
        ...BOUNDS,
        '',
        loadNote(loadBefore),
      ].join('\n');
      recordResult('scale-out', 'Issue 18: scale-out, one of each vs replicas on a Redis Cluster, and what a node loss costs', body);
      process.stdout.write(`${body}\n`);
    } finally {
      await scaled.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
