/**
 * The chaos harness (issue 21): the whole stack with every service in its own
 * process, as in production, on a Redis of its own (append-only, restartable
 * on its address), under a steady load of mixed queries, completions and
 * streams; one fault at a time, measured the way an operator would judge it.
 * The quick suite (chaos.e2e.test.ts) and the full table (bench/chaos.ts)
 * both run scenarios through `runScenario`.
 *
 * What a scenario reports:
 *  - kept: the share of query answers during the outage that kept every
 *    part of the answer the fault does not own (`affects`). A part reached
 *    through a failed service cannot be kept (`balance` hangs off auth's `me`).
 *  - fail-fast: how long the answers during the outage took (a hung service
 *    shows here: its callers wait).
 *  - recovery: from the service being ready again to the end of the last
 *    answer still missing a part.
 *  - money: every user's balance, holds, usage, invoices and usage events
 *    agree afterwards, and (where the GPU servers lived through the scenario)
 *    every generation the GPU ran has its usage event: nothing ran unbilled.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM, type UsageEvent } from '../../lib/usage-events';
import { gpuServers, startStack, type ServiceName, type Stack } from '../../scripts/stack';
import { startRedisServer, type RedisServer } from '../../scripts/redis-server';
import { percentile } from '../../bench/results';
import { gatewayWorkerPids } from '../support/gateway-workers';
import { inferenceCount } from '../support/gpu-processes';
import { bearer, gql, uniqueEmail } from '../support/graphql';
import { type ReplicatedStack, startReplicatedStack, SUBGRAPHS } from '../support/replicated-stack';
import { freeStackPorts } from '../support/stack';
import { codesOf, followStream, type StreamedChunk } from '../support/resumable-stream';
import { wsClient } from '../support/subscriptions';

/** What can fail: a subgraph, Redis, or something every part needs to reach (none of these own a part). */
export type Subgraph = 'auth' | 'billing' | 'knowledge' | 'inference';
export type Dependency = Subgraph | 'redis';

/** The parts of the load's query, each with what it needs besides the gateway. */
export const QUERY_PARTS = {
  email: ['auth', 'redis'],
  balance: ['auth', 'billing', 'redis'],
  documents: ['auth', 'knowledge', 'redis'],
  models: ['inference'],
  pricing: ['inference', 'billing'],
} as const satisfies Record<string, readonly Dependency[]>;
export type Part = keyof typeof QUERY_PARTS;

export const LOAD_QUERY = '{ me { email balance { total } documents(first: 1) { id } } models { id pricing { output } } }';
const CHAT_MODELS = ['sluice-chat', 'sluice-chat-batch'];
const MESSAGES = [{ role: 'user', content: 'Name a river.' }];
const COMPLETE = 'mutation($i: CompletionInput!, $k: String) { complete(input: $i, idempotencyKey: $k) { id finishReason } }';
/** Attempts of one load completion whose fate was unknown (see Load.complete). */
const COMPLETE_ATTEMPTS = 3;
/** How long a hold lasts when its request never settles (its inference process died). */
const RESERVATION_TTL_MS = 20_000;
/** Longest a load request may go unanswered before it is counted as lost (NO_ANSWER). */
const REQUEST_DEADLINE_MS = 60_000;
/** What every user starts with (and all they have: nobody tops up). */
const FREE_CREDIT_MICROS = 5_000_000;
const STREAM = 'subscription($i: CompletionInput!, $k: String, $r: Int) { completionStream(input: $i, streamKey: $k, resumeAt: $r) { delta finishReason error { code } } }';
/** Subscriptions a resuming stream client sends at most (LoadMix.resumeStreams), and its pause before the n-th resume (n times this). */
export const STREAM_ATTEMPTS = 5;
const RESUME_PAUSE_MS = 200;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ChaosOptions {
  /** gpu-server processes behind the inference router. @default 1 */
  gpuServers?: number;
  /** Gateway worker processes. @default 1 */
  gatewayWorkers?: number;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /**
   * Two replicas of every service, each tier behind one round-robin address
   * (test/support/replicated-stack.ts), `gpuServers` per replica.
   */
  replicated?: boolean;
}

export interface ChaosStack {
  /** The stack, or with `replicated` replica A's services reached through the shared addresses (`gatewayUrl` is the gateways'). */
  stack: Stack;
  /** Both replicas, with `replicated`. */
  replicas?: ReplicatedStack;
  redis: RedisServer;
  /** Every service's output, printed by the caller when something fails. */
  logs: string[];
  /** The gRPC addresses of the gpu-servers, in the stack's order. */
  gpuAddresses: string[];
  /** Stops Redis (SIGTERM: it writes its append-only file out). */
  stopRedis(): Promise<void>;
  /** Starts Redis again on its address, over its append-only file. */
  startRedis(): Promise<void>;
  /** Freezes a subgraph's process (SIGSTOP): it keeps its sockets and answers nothing, like a hung service. */
  pause(service: Subgraph): Promise<void>;
  /** Lets a paused subgraph run again (SIGCONT). */
  resume(service: Subgraph): void;
  /** The process ids of the gateway's workers answering now. */
  gatewayWorkerPids(): Promise<Set<number>>;
  stop(): Promise<void>;
}

export async function startChaosStack(options: ChaosOptions = {}): Promise<ChaosStack> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sluice-chaos-'));
  const logs: string[] = [];
  const onLine = (service: string, line: string) => {
    logs.push(`[${service}] ${line}`);
    if (process.env.SLUICE_TEST_LOGS === '1') process.stdout.write(`[${service}] ${line}\n`);
  };
  const redisDir = path.join(dataDir, 'redis');
  let redis = await startRedisServer(redisDir, (line) => onLine('redis', line));
  const env = {
    SLUICE_LOG_LEVEL: 'warn',
    SLUICE_GPU_SERVERS: String(options.gpuServers ?? 1),
    GATEWAY_WORKERS: String(options.gatewayWorkers ?? 1),
    // Partial answers must come from the subgraphs, not from a whole response cached before the fault.
    GATEWAY_RESPONSE_CACHE: 'false',
    GATEWAY_SUBSCRIPTIONS_PER_USER: '64',
    BILLING_FREE_CREDIT_MICROS: String(FREE_CREDIT_MICROS),
    // A killed billing's unacknowledged usage events are claimed by the next one within a second.
    BILLING_CLAIM_IDLE_MS: '1000',
    // The holds of requests a killed inference was serving are released when they expire: soon enough here to be checked.
    BILLING_RESERVATION_TTL_MS: String(RESERVATION_TTL_MS),
    BILLING_SWEEP_INTERVAL_MS: '1000',
    ...options.env,
  };
  let stack: Stack;
  let replicas: ReplicatedStack | undefined;
  try {
    if (options.replicated) {
      const gpus = options.gpuServers ?? 1;
      replicas = await startReplicatedStack({ redisUrl: redis.url, dataDir, gpuServers: { a: gpus, b: gpus }, env, onLine });
      stack = { ...replicas.a, gatewayUrl: replicas.gatewayUrl, stop: replicas.stop };
    } else {
      stack = await startStack({ ports: await freeStackPorts(), redisUrl: redis.url, dataDir, host: '127.0.0.1', env, onLine });
    }
  } catch (error) {
    process.stderr.write(`the chaos stack failed to start; its output:\n${logs.join('\n')}\n`);
    await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  const port = Number(new URL(redis.url).port);
  const paused = new Map<Subgraph, number>();
  return {
    stack,
    get redis() {
      return redis;
    },
    replicas,
    logs,
    gpuAddresses: replicas ? replicas.gpus.map((gpu) => gpu.address) : gpuServers(stack.ports, env).map((gpu) => `127.0.0.1:${gpu.grpc}`),
    stopRedis: () => redis.stop(),
    startRedis: async () => {
      redis = await startRedisServer(redisDir, (line) => onLine('redis', line), port);
    },
    pause: async (service) => {
      // Its pid from its own /health: the stack's kill waits for an exit, which SIGSTOP never brings.
      const health = await fetch(`http://127.0.0.1:${stack.ports[service]}/health`, { signal: AbortSignal.timeout(5_000) });
      const { pid } = (await health.json()) as { pid: number };
      paused.set(service, pid);
      process.kill(pid, 'SIGSTOP');
    },
    resume: (service) => {
      const pid = paused.get(service);
      if (pid === undefined) throw new Error(`cannot resume ${service}: it was not paused`);
      paused.delete(service);
      process.kill(pid, 'SIGCONT');
    },
    gatewayWorkerPids: () => gatewayWorkerPids(stack.gatewayUrl),
    stop: async () => {
      for (const pid of paused.values()) process.kill(pid, 'SIGCONT');
      await stack.stop();
      await redis.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ChaosUser {
  id: string;
  token: string;
}

/** Signs up `count` users; each starts with the free credit only. */
export async function signUpUsers(chaos: { stack: Pick<Stack, 'gatewayUrl'> }, count: number, label: string): Promise<ChaosUser[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const res = await gql(chaos.stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "Chaos") { token user { id } } }', { e: uniqueEmail(label) });
      if (!res.data?.signUp) throw new Error(`signUp expected a token, but got ${JSON.stringify(res.errors)}`);
      return { id: res.data.signUp.user.id as string, token: res.data.signUp.token as string };
    }),
  );
}

/** One request of the load and how it ended. */
export interface Outcome {
  kind: 'query' | 'complete' | 'stream';
  start: number;
  end: number;
  /** Query: the parts present in the answer. */
  parts: Part[];
  /** Completion and stream: finished with STOP or LENGTH. */
  ok: boolean;
  /** The error codes it got (extensions.code, a stream's error.code, or TRANSPORT for no GraphQL answer). */
  codes: string[];
  /** SUBGRAPH_UNAVAILABLE reasons. */
  reasons: string[];
  /** Sent again after an attempt whose fate was unknown: a query that got no answer at all (TRANSPORT), as a client's retry link does; a completion, also when its inference replica was lost under it (Load.complete); a stream that was resumed. */
  retried?: boolean;
  /** A resumed stream: what cut each of its runs (CLOSE_1006, SERVICE_UNAVAILABLE, GPU_UNAVAILABLE…). */
  cuts?: string[];
}

export interface LoadMix {
  queryClients: number;
  completionClients: number;
  streamClients: number;
  /** Tokens each stream asks for: long enough to be mid-stream when a fault strikes. */
  streamTokens: number;
  /** Pause between one client's requests. */
  pauseMs: number;
  /**
   * Streams are sent with a stream key and resumed when cut, as the API lets a client do
   * (test/support/resumable-stream.ts); otherwise a cut stream is recorded as it ended.
   */
  resumeStreams?: boolean;
}

/** Clients looping over their request kind until stopped, each recording what it got. */
export class Load {
  readonly outcomes: Outcome[] = [];
  private running = false;
  private readonly loops: Promise<void>[] = [];

  constructor(
    private readonly gatewayUrl: string,
    private readonly users: ChaosUser[],
    private readonly mix: LoadMix,
  ) {}

  start(): this {
    this.running = true;
    const user = (i: number) => this.users[i % this.users.length];
    for (let i = 0; i < this.mix.queryClients; i++) this.loops.push(this.loop('query', () => this.query(user(i))));
    for (let i = 0; i < this.mix.completionClients; i++) this.loops.push(this.loop('complete', () => this.complete(user(i), i)));
    for (let i = 0; i < this.mix.streamClients; i++) this.loops.push(this.loop('stream', (deadline) => this.stream(user(i), i, deadline)));
    return this;
  }

  /** Stops starting requests and waits for those in flight. */
  async stop(): Promise<Outcome[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.outcomes;
  }

  /**
   * One client's requests, one after another. A request that gets no answer
   * within REQUEST_DEADLINE_MS (a connection the gateway's cluster handed to a
   * worker as it died is never answered) is recorded as NO_ANSWER and left
   * behind, so that a lost connection cannot stall the load.
   */
  private async loop(kind: Outcome['kind'], request: (deadline: AbortSignal) => Promise<Outcome>): Promise<void> {
    while (this.running) {
      const start = Date.now();
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), REQUEST_DEADLINE_MS);
      const unanswered = new Promise<Outcome>((resolve) =>
        deadline.signal.addEventListener('abort', () => resolve({ kind, start, end: Date.now(), parts: [], ok: false, codes: ['NO_ANSWER'], reasons: [] })),
      );
      const answered = request(deadline.signal);
      // Left behind when the deadline wins: a late failure of it must not end the load's process as unhandled.
      answered.catch(() => undefined);
      const outcome = await Promise.race([answered, unanswered]);
      clearTimeout(timer);
      this.outcomes.push(outcome);
      await sleep(this.mix.pauseMs);
    }
  }

  /**
   * One load query. A query whose connection failed without an answer (its gateway process died under it) is sent
   * once more, as Apollo Client's RetryLink does for network errors: a query can run twice without harm. Streams are
   * never sent again.
   */
  private async query(user: ChaosUser): Promise<Outcome> {
    const start = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await gql(this.gatewayUrl, LOAD_QUERY, {}, bearer(user.token));
        return { kind: 'query', start, end: Date.now(), parts: partsOf(res.data), ok: !res.errors, ...codesOf(res.errors), retried: attempt > 1 };
      } catch {
        if (attempt === 2) return { kind: 'query', start, end: Date.now(), parts: [], ok: false, codes: ['TRANSPORT'], reasons: [], retried: true };
      }
    }
  }

  /**
   * One load completion, with an idempotency key, sent again with the same key when its fate is unknown, as the
   * API's contract lets a client do: no answer at all (its gateway process died under it), SUBGRAPH_UNAVAILABLE
   * with CONNECTION_FAILED (its inference replica died under it: it may have run), or CONFLICT (an earlier attempt
   * still runs; after its retryAfter). Whatever happened to the earlier attempts, it is generated and billed once.
   */
  private async complete(user: ChaosUser, client: number): Promise<Outcome> {
    const start = Date.now();
    const input = { model: 'sluice-chat-batch', messages: MESSAGES, maxTokens: 4, temperature: 0.8, seed: client, cache: false };
    const key = randomUUID();
    for (let attempt = 1; ; attempt++) {
      let outcome: Outcome;
      let pauseMs = 0;
      try {
        const res = await gql(this.gatewayUrl, COMPLETE, { i: input, k: key }, bearer(user.token));
        const ok = /^(STOP|LENGTH)$/.test(res.data?.complete?.finishReason ?? '');
        outcome = { kind: 'complete', start, end: Date.now(), parts: [], ok, ...codesOf(res.errors) };
        const lost = res.errors?.some((e) => e.extensions?.code === 'SUBGRAPH_UNAVAILABLE' && e.extensions.reason === 'CONNECTION_FAILED');
        const running = res.errors?.find((e) => e.extensions?.code === 'CONFLICT');
        if (!ok && !lost && !running) return { ...outcome, retried: attempt > 1 };
        pauseMs = running ? Number(running.extensions?.retryAfter ?? 1) * 1000 : 0;
      } catch {
        outcome = { kind: 'complete', start, end: Date.now(), parts: [], ok: false, codes: ['TRANSPORT'], reasons: [] };
      }
      if (outcome.ok || attempt === COMPLETE_ATTEMPTS) return { ...outcome, retried: attempt > 1 };
      await sleep(pauseMs);
    }
  }

  private async stream(user: ChaosUser, client: number, deadline: AbortSignal): Promise<Outcome> {
    const start = Date.now();
    const input = { model: 'sluice-chat', messages: MESSAGES, maxTokens: this.mix.streamTokens, temperature: 0.8, seed: client, cache: false };
    const key = this.mix.resumeStreams ? randomUUID() : null;
    const followed = await followStream<StreamedChunk>(
      // Up to 3 sockets until one is acknowledged, as a browser's graphql-ws client retries a connection that fails to open.
      () => wsClient(this.gatewayUrl, user.token, { connectAttempts: 3 }),
      (resumeAt) => ({ query: STREAM, variables: { i: input, k: key, r: key ? resumeAt : null } }),
      'completionStream',
      { attempts: key ? STREAM_ATTEMPTS : 1, pauseMs: RESUME_PAUSE_MS, signal: deadline },
    );
    const ok = !followed.failure && /^(STOP|LENGTH)$/.test(followed.last?.finishReason ?? '');
    const cuts = followed.cuts.length ? { retried: true, cuts: followed.cuts } : {};
    return { kind: 'stream', start, end: Date.now(), parts: [], ok, codes: followed.failure?.codes ?? [], reasons: followed.failure?.reasons ?? [], ...cuts };
  }
}

/** The load query's answer, as far as partsOf reads it: every field may be missing or null when its subgraph is down. */
interface LoadAnswer {
  me?: { email?: unknown; balance?: { total?: unknown } | null; documents?: unknown } | null;
  models?: Array<{ pricing: unknown }> | null;
}

function partsOf(data: LoadAnswer | null | undefined): Part[] {
  const parts: Part[] = [];
  if (typeof data?.me?.email === 'string') parts.push('email');
  if (typeof data?.me?.balance?.total === 'number') parts.push('balance');
  if (Array.isArray(data?.me?.documents)) parts.push('documents');
  if (Array.isArray(data?.models) && data.models.length > 0) {
    parts.push('models');
    if (data.models.some((m) => m.pricing !== null)) parts.push('pricing');
  }
  return parts;
}

/** The parts an answer should keep while `affects` are down. */
export function partsKept(affects: readonly Dependency[]): Part[] {
  return (Object.keys(QUERY_PARTS) as Part[]).filter((part) => !QUERY_PARTS[part].some((d: Dependency) => affects.includes(d)));
}

export interface Scenario {
  name: string;
  /** What the fault takes away: the parts needing these may be missing until recovery. */
  affects: Dependency[];
  /** False when a GPU server's statistics die with it: GPU runs cannot be matched to usage events. */
  gpuCountsSurvive: boolean;
  /** True when the fault kills the process that asks the GPU for generations and reports their usage (inference). */
  abandonsGenerations?: boolean;
  /** What the scenario needs of the load other than the run's mix. */
  mix?: Partial<LoadMix>;
  /** Runs under the load before the fault's clock starts (choosing the victim, so that choosing is not counted as outage). */
  aim?(chaos: ChaosStack): Promise<void>;
  inject(chaos: ChaosStack): Promise<void>;
  /** Undoes the fault and resolves once the service is ready again. */
  recover(chaos: ChaosStack): Promise<void>;
}

export const killAndRestart = (service: ServiceName, affects: Dependency[], signal: NodeJS.Signals = 'SIGKILL'): Omit<Scenario, 'name'> => ({
  affects,
  gpuCountsSurvive: !service.startsWith('gpu-server'),
  abandonsGenerations: service === 'inference',
  inject: (chaos) => chaos.stack.kill(service, signal),
  recover: (chaos) => chaos.stack.restart(service),
});

/**
 * Kills the gpu-server that holds the most of inference's long requests at
 * that moment (a stream outlives the samples; a batched completion seldom
 * does), so the kill cuts streams in flight: which server the router gave the
 * streams to is its choice, and a fixed victim sometimes held none.
 */
export function busiestGpuServerKilled(): Omit<Scenario, 'name'> {
  let victim: ServiceName | undefined;
  return {
    affects: [],
    gpuCountsSurvive: false,
    // Streams of about a second (prompt plus 800 tokens fit the 1,024-token context): one seen in flight is still running at the kill.
    mix: { streamTokens: 800 },
    aim: async (chaos) => {
      victim = await busiestGpuServer(chaos.stack);
    },
    inject: async (chaos) => {
      if (!victim) throw new Error('inject expects the gpu-server aim chose, but aim did not run');
      await chaos.stack.kill(victim, 'SIGKILL');
    },
    recover: async (chaos) => {
      if (!victim) throw new Error('recover expects the gpu-server aim chose, but aim did not run');
      await chaos.stack.restart(victim);
    },
  };
}

/** The gpu-server of `stack` with the most requests in flight on it (busiestGpuEndpoint). */
async function busiestGpuServer(stack: Stack): Promise<ServiceName> {
  const servers = gpuServers(stack.ports, stack.env);
  const address = await busiestGpuEndpoint(
    [stack],
    servers.map((gpu) => `127.0.0.1:${gpu.grpc}`),
  );
  return servers.find((gpu) => `127.0.0.1:${gpu.grpc}` === address)!.name;
}

/**
 * Of the gpu-server `addresses`, the one with the most requests in flight on
 * it in both of two samples 20 ms apart (summed over the inference replicas
 * of `stacks`, from their /metrics), waiting (bounded) for one with any: a
 * gpu-server to kill while it surely holds streams.
 */
export async function busiestGpuEndpoint(stacks: Stack[], addresses: string[]): Promise<string> {
  const sample = async () => {
    const seen = await Promise.all(stacks.map(gpuEndpointsInFlight));
    return addresses.map((address) => seen.reduce((n, endpoints) => n + (endpoints.get(address) ?? 0), 0));
  };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const [first, second] = [await sample(), await sleep(20).then(sample)];
    const held = first.map((count, i) => Math.min(count, second[i]));
    const most = Math.max(...held);
    if (most > 0) return addresses[held.indexOf(most)];
  }
  throw new Error('expected a gpu-server with requests in flight under the load, but none had any for 15 s');
}

/** sluice_gpu_endpoint_in_flight of inference's /metrics, by endpoint address. */
async function gpuEndpointsInFlight(stack: Stack): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${stack.ports.inference}/metrics`, {
    headers: { authorization: `Bearer ${stack.env.INFERENCE_METRICS_TOKEN}` },
    signal: AbortSignal.timeout(2_000),
  });
  const text = await res.text();
  return new Map([...text.matchAll(/^sluice_gpu_endpoint_in_flight\{endpoint="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
}

/**
 * A rolling restart of every service of a replicated stack, as a deployment
 * rollout does it: one replica at a time, out of its Service's endpoints,
 * SIGTERM (it drains: `/ready` turns 503, new connections are refused,
 * requests in flight finish), start it again, and back into the endpoints
 * once it is ready. The gpu-servers go first, each
 * waited for until every inference replica routes to it again, so that the
 * second is never stopped while the router knows only the stopped one.
 */
export async function rollingRestart(replicas: ReplicatedStack): Promise<void> {
  for (const gpu of replicas.gpus) {
    await replicas[gpu.stack].kill(gpu.name, 'SIGTERM');
    await replicas[gpu.stack].restart(gpu.name);
    await until(`every inference replica routing to ${gpu.address} again`, () => routesTo(replicas, gpu.address));
  }
  for (const service of [...SUBGRAPHS, 'gateway'] as const) {
    for (const replica of [replicas.a, replicas.b]) {
      const port = replica.ports[service];
      replicas.proxies[service].exclude(port);
      await replica.kill(service, 'SIGTERM');
      await replica.restart(service);
      await until(`${service} on port ${port} ready`, () => answers200(`http://127.0.0.1:${port}/ready`));
      replicas.proxies[service].include(port);
    }
  }
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`expected ${what} within ${timeoutMs} ms, but it was not`);
    await sleep(100);
  }
}

async function answers200(url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** Whether every inference replica's router has the endpoint up with its breaker closed (its /metrics). */
async function routesTo(replicas: ReplicatedStack, address: string): Promise<boolean> {
  const seen = await Promise.all(
    [replicas.a, replicas.b].map(async (replica) => {
      try {
        const res = await fetch(`http://127.0.0.1:${replica.ports.inference}/metrics`, {
          headers: { authorization: `Bearer ${replica.env.INFERENCE_METRICS_TOKEN}` },
          signal: AbortSignal.timeout(2_000),
        });
        const text = await res.text();
        return text.includes(`sluice_gpu_endpoint_up{endpoint="${address}"} 1`) && text.includes(`sluice_gpu_endpoint_breaker_state{endpoint="${address}"} 0`);
      } catch {
        return false;
      }
    }),
  );
  return seen.every(Boolean);
}

export interface Phases {
  /** Load before the fault. */
  beforeMs: number;
  /** How long the fault lasts (from injecting it to starting recovery). */
  outageMs: number;
  /** Load after the service is ready again. */
  afterMs: number;
}

export interface Money {
  exact: boolean;
  /** What disagreed, one line per user; empty when exact. */
  problems: string[];
  /** Usage events the scenario's users produced. */
  events: number;
  /** Generations the GPU servers ran over the scenario, when their statistics survived it. */
  gpuRuns?: number;
  /**
   * Completions and streams in flight on a killed inference process: a generation it had started may still run to
   * its end on the GPU, but its text was never delivered and nothing was charged (the hold expires). Runs beyond the
   * usage events are allowed up to this many.
   */
  abandoned?: number;
}

export interface ScenarioResult {
  name: string;
  outcomes: Outcome[];
  faultAt: number;
  /** When recovery began (the restart was started): requests from then on may be served again. */
  recoverAt: number;
  readyAt: number;
  /** Query answers that started during the outage. */
  outageAnswers: Outcome[];
  /** Share of them that kept every part the fault does not own (1 when there were none). */
  kept: number;
  /** The answers among them that lost a part the fault does not own, each with the parts it lost. */
  notKept: { answer: Outcome; lost: Part[] }[];
  /** Latencies of the query answers started during the outage: p50 and max, ms. */
  failFast: { p50: number; max: number };
  /** From ready to the end of the last answer still missing a part, ms (0: whole at once). */
  recoveryMs: number;
  money: Money;
}

export async function runScenario(chaos: ChaosStack, scenario: Scenario, phases: Phases, mix: LoadMix, users: ChaosUser[]): Promise<ScenarioResult> {
  const gpuBefore = scenario.gpuCountsSurvive ? await gpuRuns(chaos) : undefined;
  const load = new Load(chaos.stack.gatewayUrl, users, { ...mix, ...scenario.mix }).start();
  await sleep(phases.beforeMs);
  await scenario.aim?.(chaos);
  const faultAt = Date.now();
  await scenario.inject(chaos);
  await sleep(phases.outageMs);
  const recoverAt = Date.now();
  await scenario.recover(chaos);
  const readyAt = Date.now();
  await sleep(phases.afterMs);
  const outcomes = await load.stop();

  const queries = outcomes.filter((o) => o.kind === 'query');
  const whole = Object.keys(QUERY_PARTS).length;
  const outageAnswers = queries.filter((o) => o.start >= faultAt && o.start < readyAt);
  const kept = partsKept(scenario.affects);
  const notKept = outageAnswers.map((answer) => ({ answer, lost: kept.filter((p) => !answer.parts.includes(p)) })).filter((o) => o.lost.length > 0);
  const keptCount = outageAnswers.length - notKept.length;
  const latencies = outageAnswers.map((o) => o.end - o.start);
  const lastBroken = queries.filter((o) => o.start >= readyAt && o.parts.length < whole).reduce((t, o) => Math.max(t, o.end), readyAt);
  const money = await settledMoney(chaos, users, RESERVATION_TTL_MS + 10_000);
  if (gpuBefore !== undefined) money.gpuRuns = (await gpuRuns(chaos)) - gpuBefore;
  if (scenario.abandonsGenerations) {
    // In flight at the kill: those that failed, and completions whose lost attempt was sent again and answered.
    money.abandoned = outcomes.filter((o) => o.kind !== 'query' && (!o.ok || o.retried) && o.start < faultAt && o.end >= faultAt).length;
  }
  // More events than runs is no loss: a stream cancelled before the GPU counted it still gets its (empty) event.
  if (money.gpuRuns !== undefined && money.gpuRuns > money.events + (money.abandoned ?? 0)) {
    money.exact = false;
    money.problems.push(
      `the GPU servers ran ${money.gpuRuns} generations, but only ${money.events} usage events were published for them${money.abandoned ? ` (and ${money.abandoned} requests were in flight on the killed process)` : ''}`,
    );
  }
  return {
    name: scenario.name,
    outcomes,
    faultAt,
    recoverAt,
    readyAt,
    outageAnswers,
    notKept,
    kept: outageAnswers.length ? keptCount / outageAnswers.length : 1,
    failFast: { p50: percentile(latencies, 50), max: latencies.length ? Math.max(...latencies) : NaN },
    recoveryMs: lastBroken - readyAt,
    money,
  };
}

/** Generations (batch rows and streams) of the chat models on every GPU server. */
async function gpuRuns(chaos: ChaosStack): Promise<number> {
  const counts = await Promise.all(chaos.gpuAddresses.flatMap((address) => CHAT_MODELS.map((model) => inferenceCount(address, model))));
  return counts.reduce((a, b) => a + b, 0);
}

const ACCOUNT = `query($from: DateTime!, $to: DateTime!) { me {
  balance { total granted toppedUp reserved }
  usage(from: $from, to: $to, groupBy: MODEL) { requests promptCacheHitTokens promptCacheMissTokens completionTokens amount }
  invoices { total lines { amount } }
} }`;

/**
 * Waits (bounded) until billing has settled every usage event of the users
 * and released every hold, then checks that the figures agree: the credit
 * spent equals the usage billed equals the invoices, usage counts each event
 * once with its tokens, and nothing is held.
 */
export async function settledMoney(chaos: ChaosStack, users: ChaosUser[], timeoutMs: number): Promise<Money> {
  const redis = new Redis(chaos.redis.url, { maxRetriesPerRequest: 3 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const published = (await redis.xrange(USAGE_EVENTS_STREAM, '-', '+')).map(([, fields]) => decodeUsageEvent(fields));
      // A publisher's retry after an XADD whose reply was lost (Redis going away) adds a copy of its event
      // (usage-publisher.ts); billing settles each eventId once, so each counts once here too.
      const events = [...new Map(published.map((event) => [event.eventId, event])).values()];
      const problems: string[] = [];
      let count = 0;
      for (const user of users) {
        const mine = events.filter((e) => e.userId === user.id);
        count += mine.length;
        const problem = await accountProblem(chaos.stack.gatewayUrl, user, mine);
        if (problem) problems.push(problem);
      }
      if (problems.length === 0 || Date.now() > deadline) return { exact: problems.length === 0, problems, events: count };
      await sleep(250);
    }
  } finally {
    redis.disconnect();
  }
}

async function accountProblem(gatewayUrl: string, user: ChaosUser, events: UsageEvent[]): Promise<string | undefined> {
  const day = 86_400_000;
  const res = await gql(gatewayUrl, ACCOUNT, { from: new Date(Date.now() - day).toISOString(), to: new Date(Date.now() + day).toISOString() }, bearer(user.token)).catch((e: Error) => ({
    errors: [{ message: e.message }],
    data: undefined,
  }));
  const me = res.data?.me;
  if (!me?.balance || !me.usage || !me.invoices) return `user ${user.id}: the account could not be read (${JSON.stringify(res.errors)})`;
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const spent = FREE_CREDIT_MICROS - me.balance.total;
  const billed = sum(me.usage.map((b: { amount: number }) => b.amount));
  const invoiced = sum(me.invoices.map((i: { total: number }) => i.total));
  const requests = sum(me.usage.map((b: { requests: number }) => b.requests));
  type TokenCounts = { completionTokens: number; promptCacheMissTokens: number; promptCacheHitTokens: number };
  const tokens = (pick: (x: TokenCounts) => number) => [sum(me.usage.map(pick)), sum(events.map(pick))];
  const [usageOut, eventsOut] = tokens((x) => x.completionTokens);
  const [usageMiss, eventsMiss] = tokens((x) => x.promptCacheMissTokens);
  const [usageHit, eventsHit] = tokens((x) => x.promptCacheHitTokens);
  const wrong = [
    me.balance.reserved !== 0 && `still holds ${me.balance.reserved} µ`,
    spent !== billed && `spent ${spent} µ but usage bills ${billed} µ`,
    invoiced !== billed && `invoices total ${invoiced} µ but usage bills ${billed} µ`,
    requests !== events.length && `usage counts ${requests} requests but ${events.length} usage events were published`,
    (usageOut !== eventsOut || usageMiss !== eventsMiss || usageHit !== eventsHit) &&
      `usage counts ${usageHit}/${usageMiss}/${usageOut} hit/miss/completion tokens but the events carry ${eventsHit}/${eventsMiss}/${eventsOut}`,
  ].filter(Boolean);
  return wrong.length ? `user ${user.id}: ${wrong.join('; ')}` : undefined;
}
