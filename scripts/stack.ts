import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ConfigError, PORT_VARIABLES, type PortName } from '../lib/config';
import { generateIdentityKeyPair } from '../lib/identity';
import { IN_MEMORY_REDIS_URL } from '../lib/redis';
import { redisAclFile, redisUrlAs, REDIS_SERVICE_USERS, type RedisServiceUser } from '../lib/redis-acl';
import { killWithParent } from './child-lifetime';
import { hasRedisServer, type RedisServer, startRedisServer } from './redis-server';

/**
 * Runs the whole Sluice stack: gpu-server, the four subgraphs and the gateway,
 * each as a child process, in dependency order, each waited for until its
 * health probe answers. `npm start` and the end-to-end tests both use it.
 *
 * Redis comes from `redisUrl` when given; else a private `redis-server` is
 * started (data under `<dataDir>/redis`); else, when no binary exists, every
 * service runs inside this process around one in-memory store (services in
 * separate processes could not share it), with a warning that nothing is kept.
 *
 * Nothing behind the gateway trusts the network (README, "Security model"): each run
 * makes its own secrets (or takes them from the environment) and gives each
 * service only its own — the gateway the identity signing key, auth the
 * session-key sealing secret, inference the gpu-server's restricted-protocol
 * key, every service its own Redis ACL user on a self-started redis-server —
 * binds the gpu-server to loopback, and restricts every gpu-server category
 * but health to the inference service's key.
 */
export type ServiceName = 'gpu-server' | `gpu-server-${number}` | 'inference' | 'auth' | 'billing' | 'knowledge' | 'gateway';

export type StackPorts = Record<PortName, number>;

/** Every port of the stack, each from `portOf` (an environment read, a free-port probe…). */
export async function stackPorts(portOf: (name: PortName) => number | Promise<number>): Promise<StackPorts> {
  const ports = {} as StackPorts;
  for (const name of Object.keys(PORT_VARIABLES) as PortName[]) ports[name] = await portOf(name);
  return ports;
}

export interface StackOptions {
  ports: StackPorts;
  /** Use this Redis; when absent the stack starts its own (or falls back to memory). */
  redisUrl?: string;
  /** Where a self-started redis-server keeps its data. */
  dataDir: string;
  /** The address services bind to. @default 0.0.0.0 */
  host?: string;
  /** Extra environment for every service. */
  env?: Record<string, string>;
  /** Receives every output line of every service. */
  onLine: (service: string, line: string) => void;
  /** Called when a service exits while the stack is running (not while stopping). */
  onUnexpectedExit?: (service: ServiceName, code: number | null, signal: string | null) => void;
  /** How long to wait for each service's health probe. @default 120000 ms */
  startTimeoutMs?: number;
  /** Extra Node options for a service's process (a benchmark's `--cpu-prof`, say). */
  nodeArgs?: (service: ServiceName) => string[];
}

export interface Stack {
  redisUrl: string;
  mode: 'processes' | 'in-process';
  gatewayUrl: string;
  ports: StackPorts;
  /** Environment every service got (keys included), for tests that start extra pieces. */
  env: Record<string, string>;
  /** Each service's Redis URL (as its own ACL user) on a self-started redis-server; absent otherwise. */
  redisUserUrls?: Record<RedisServiceUser, string>;
  /** Sends a signal to one service's process (processes mode only). */
  kill(service: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a killed service again, on its port, and waits until it is healthy (processes mode only). */
  restart(service: ServiceName): Promise<void>;
  stop(): Promise<void>;
}

interface ServiceSpec {
  name: ServiceName;
  entry: string;
  /** The port its health probe answers on. */
  port: PortName | number;
  healthPath: string;
  /** Environment of this process only (an extra gpu-server's ports). */
  env?: Record<string, string>;
}

const ROOT = path.resolve(__dirname, '..');

/**
 * How many gpu-server processes the stack runs (SLUICE_GPU_SERVERS, default
 * 1), behind the inference router. The first uses the gpu-server ports; the
 * n-th (n ≥ 2) the same ports plus 10 × (n − 1): 8011, 8010, 8012 for the
 * second with the defaults.
 */
export function gpuServers(ports: StackPorts, env: Record<string, string | undefined>): { name: ServiceName; grpc: number; http: number; metrics: number }[] {
  const count = Number(env.SLUICE_GPU_SERVERS ?? '1');
  if (!Number.isInteger(count) || count < 1 || count > 16) throw new ConfigError(`SLUICE_GPU_SERVERS expects an integer from 1 to 16, but got ${JSON.stringify(env.SLUICE_GPU_SERVERS)}`);
  return Array.from({ length: count }, (_, i) => ({
    name: i === 0 ? 'gpu-server' : (`gpu-server-${i + 1}` as ServiceName),
    grpc: ports.gpuGrpc + 10 * i,
    http: ports.gpuHttp + 10 * i,
    metrics: ports.gpuMetrics + 10 * i,
  }));
}

/** In start order; services of one stage start together. */
function stages(ports: StackPorts, env: Record<string, string | undefined>): ServiceSpec[][] {
  const gpus = gpuServers(ports, env).map(
    (gpu, i): ServiceSpec => ({
      name: gpu.name,
      entry: 'gpu-server/main.ts',
      port: i === 0 ? 'gpuHttp' : gpu.http,
      healthPath: '/v2/health/ready',
      env: i === 0 ? undefined : { GPU_SERVER_GRPC_PORT: String(gpu.grpc), GPU_SERVER_HTTP_PORT: String(gpu.http), GPU_SERVER_METRICS_PORT: String(gpu.metrics) },
    }),
  );
  return [gpus, ...SERVICE_STAGES];
}

const SERVICE_STAGES: ServiceSpec[][] = [
  [
    { name: 'inference', entry: 'subgraphs/inference/main.ts', port: 'inference', healthPath: '/health' },
    { name: 'auth', entry: 'subgraphs/auth/main.ts', port: 'auth', healthPath: '/health' },
    { name: 'billing', entry: 'subgraphs/billing/main.ts', port: 'billing', healthPath: '/health' },
    { name: 'knowledge', entry: 'subgraphs/knowledge/main.ts', port: 'knowledge', healthPath: '/health' },
  ],
  [{ name: 'gateway', entry: 'gateway/main.ts', port: 'gateway', healthPath: '/health' }],
];

export async function startStack(options: StackOptions): Promise<Stack> {
  let redis: RedisServer | undefined;
  let redisUrl = options.redisUrl;
  let redisUsers: Record<RedisServiceUser, string> | undefined;
  if (!redisUrl) {
    if (hasRedisServer()) {
      const passwords = redisPasswords();
      redis = await startRedisServer(path.join(options.dataDir, 'redis'), (line) => options.onLine('redis', line), undefined, {
        file: redisAclFile(passwords),
        defaultPassword: passwords.default,
      });
      redisUrl = redis.url;
      redisUsers = Object.fromEntries(REDIS_SERVICE_USERS.map((user) => [user, redisUrlAs(redis!.url, user, passwords[user])])) as Record<RedisServiceUser, string>;
    } else {
      options.onLine(
        'stack',
        'WARN  no REDIS_URL and no redis-server binary: running every service in this process on an in-memory store; NOTHING IS KEPT when it stops. Install redis-server or set REDIS_URL to keep data.',
      );
      redisUrl = IN_MEMORY_REDIS_URL;
    }
  }
  const env = stackEnv(options, redisUrl);
  // The launcher is the stack's operator: its own calls to the gpu-server and scrapes (tests, benchmarks) carry the keys too.
  process.env.INFERENCE_GPU_SERVER_KEY ??= env.INFERENCE_GPU_SERVER_KEY;
  process.env.SLUICE_METRICS_TOKEN ??= env.SLUICE_METRICS_TOKEN;
  const serviceStages = stages(options.ports, { ...process.env, ...env });
  let running: Running;
  try {
    running = redisUrl === IN_MEMORY_REDIS_URL ? await startInProcess(options, env) : await startProcesses(options, env, serviceStages, redisUsers);
  } catch (error) {
    await redis?.stop();
    throw error;
  }
  return {
    redisUrl,
    mode: redisUrl === IN_MEMORY_REDIS_URL ? 'in-process' : 'processes',
    gatewayUrl: `http://127.0.0.1:${options.ports.gateway}/graphql`,
    ports: options.ports,
    env,
    redisUserUrls: redisUsers,
    kill: running.kill,
    restart: running.restart,
    stop: async () => {
      await running.stop();
      await redis?.stop();
    },
  };
}

/** The gpu-server categories only the inference service may call; health stays open for probes. */
export const GPU_RESTRICTED_CATEGORIES = 'metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging';

const secret = () => randomBytes(24).toString('base64url');

/** The HTTP header of the gpu-server's restricted key (`<key>: <value>`), for the operator's own calls to its restricted routes. */
export function gpuServerHttpHeaders(env: Record<string, string | undefined>): Record<string, string> {
  const key = env.INFERENCE_GPU_SERVER_KEY ?? '';
  const equals = key.indexOf('=');
  return equals > 0 ? { [key.slice(0, equals)]: key.slice(equals + 1) } : {};
}

/** Passwords of this run's Redis users (REDIS_PASSWORD_<USER> from the environment, else new). */
function redisPasswords(): Record<RedisServiceUser | 'default', string> {
  const users = ['default', ...REDIS_SERVICE_USERS] as const;
  return Object.fromEntries(users.map((user) => [user, process.env[`REDIS_PASSWORD_${user.toUpperCase()}`] || secret()])) as Record<RedisServiceUser | 'default', string>;
}

function stackEnv(options: StackOptions, redisUrl: string): Record<string, string> {
  const { ports } = options;
  const keys = process.env.SLUICE_IDENTITY_PRIVATE_KEY ? undefined : generateIdentityKeyPair();
  const gpuKey = process.env.INFERENCE_GPU_SERVER_KEY || `sluice-gpu-key=${secret()}`;
  const metricsToken = process.env.SLUICE_METRICS_TOKEN || secret();
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    HOST: options.host ?? '0.0.0.0',
    // Only the inference service calls the gpu-server, from this machine.
    GPU_SERVER_HOST: '127.0.0.1',
    // Model control for the operator (with the key): the default of a bare gpu-server is Triton's 'none'.
    GPU_SERVER_MODEL_CONTROL_MODE: 'explicit',
    GPU_SERVER_GRPC_RESTRICTED_PROTOCOL: `${GPU_RESTRICTED_CATEGORIES}:${gpuKey}`,
    GPU_SERVER_HTTP_RESTRICTED_API: `${GPU_RESTRICTED_CATEGORIES}:${gpuKey}`,
    INFERENCE_GPU_SERVER_KEY: gpuKey,
    AUTH_SESSION_SEALING_KEY: process.env.AUTH_SESSION_SEALING_KEY || secret(),
    SLUICE_METRICS_TOKEN: metricsToken,
    GATEWAY_METRICS_TOKEN: process.env.GATEWAY_METRICS_TOKEN || metricsToken,
    INFERENCE_METRICS_TOKEN: process.env.INFERENCE_METRICS_TOKEN || metricsToken,
    GPU_SERVER_METRICS_TOKEN: process.env.GPU_SERVER_METRICS_TOKEN || metricsToken,
    INFERENCE_GPU_ENDPOINTS: gpuServers(ports, { ...process.env, ...options.env })
      .map((gpu) => `127.0.0.1:${gpu.grpc}`)
      .join(','),
    GATEWAY_AUTH_JWKS_URL: `http://127.0.0.1:${ports.auth}/.well-known/jwks.json`,
    GATEWAY_AUTH_URL: `http://127.0.0.1:${ports.auth}`,
    INFERENCE_BILLING_URL: `http://127.0.0.1:${ports.billing}`,
    SLUICE_SUBGRAPH_AUTH_URL: `http://127.0.0.1:${ports.auth}/graphql`,
    SLUICE_SUBGRAPH_BILLING_URL: `http://127.0.0.1:${ports.billing}/graphql`,
    SLUICE_SUBGRAPH_KNOWLEDGE_URL: `http://127.0.0.1:${ports.knowledge}/graphql`,
    SLUICE_SUBGRAPH_INFERENCE_URL: `http://127.0.0.1:${ports.inference}/graphql`,
    ...(keys ? { SLUICE_IDENTITY_PRIVATE_KEY: keys.privateKeyPem, SLUICE_IDENTITY_PUBLIC_KEY: keys.publicKeyPem } : {}),
    ...options.env,
  };
  for (const [name, variable] of Object.entries(PORT_VARIABLES) as [PortName, string][]) env[variable] = String(ports[name]);
  return env;
}

interface Running {
  kill(service: ServiceName, signal?: NodeJS.Signals): Promise<void>;
  restart(service: ServiceName): Promise<void>;
  stop(): Promise<void>;
}

async function startProcesses(options: StackOptions, env: Record<string, string>, STAGES: ServiceSpec[][], redisUsers?: Record<RedisServiceUser, string>): Promise<Running> {
  const children = new Map<ServiceName, ChildProcess>();
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    // Reverse order: the gateway stops taking requests before what it calls goes away.
    for (const stage of [...STAGES].reverse()) {
      await Promise.all(
        stage
          .map((spec) => children.get(spec.name))
          .filter((c): c is ChildProcess => !!c)
          .map((child) => terminate(child)),
      );
    }
  };
  const start = async (spec: ServiceSpec) => {
    const redisUser = redisUsers && redisUserOf(spec.name);
    const child = spawnService(spec, options, { ...env, ...spec.env, ...(redisUser ? { REDIS_URL: redisUsers[redisUser] } : {}) });
    children.set(spec.name, child);
    child.once('exit', (code, signal) => {
      if (!stopping) options.onUnexpectedExit?.(spec.name, code, signal);
    });
    await waitForHealth(spec, options, child);
  };
  try {
    for (const stage of STAGES) await Promise.all(stage.map(start));
  } catch (error) {
    await stopAll();
    throw error;
  }
  return {
    stop: stopAll,
    kill: async (name, signal = 'SIGKILL') => {
      const child = children.get(name);
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill(signal);
        await exited;
      }
    },
    restart: async (name) => {
      const child = children.get(name);
      if (child && child.exitCode === null && child.signalCode === null) throw new Error(`cannot restart ${name}: it is still running (kill it first)`);
      await start(STAGES.flat().find((spec) => spec.name === name)!);
    },
  };
}

/** The Redis ACL user each service connects as (the gpu-server uses no Redis). */
function redisUserOf(service: ServiceName): RedisServiceUser | undefined {
  return (REDIS_SERVICE_USERS as readonly string[]).includes(service) ? (service as RedisServiceUser) : undefined;
}

type ServiceKind = 'gateway' | 'auth' | 'billing' | 'knowledge' | 'inference' | 'gpu-server';

/**
 * Each secret and the only services that get it (with its `_FILE` form). The
 * identity signing key is the gateway's alone: a subgraph that could sign
 * would be able to raise a caller's rights (or invent a caller) when it calls
 * a sibling, so the others get the public key alone — as in
 * docker-compose.yml, where each service mounts only its own secrets.
 */
const SECRET_OWNERS: Readonly<Record<string, readonly ServiceKind[]>> = {
  SLUICE_IDENTITY_PRIVATE_KEY: ['gateway'],
  AUTH_SESSION_SEALING_KEY: ['auth'],
  AUTH_SESSION_PRIVATE_KEY: ['auth'],
  INFERENCE_GPU_SERVER_KEY: ['inference'],
  GPU_SERVER_GRPC_RESTRICTED_PROTOCOL: ['gpu-server'],
  GPU_SERVER_HTTP_RESTRICTED_API: ['gpu-server'],
  SLUICE_METRICS_TOKEN: [],
  GATEWAY_METRICS_TOKEN: ['gateway'],
  INFERENCE_METRICS_TOKEN: ['inference'],
  GPU_SERVER_METRICS_TOKEN: ['gpu-server'],
};

/** A service's environment: everything but the secrets of other services. */
export function serviceEnv(service: ServiceName, env: Record<string, string | undefined>): Record<string, string | undefined> {
  const kind: ServiceKind = service.startsWith('gpu-server') ? 'gpu-server' : (service as ServiceKind);
  const kept = { ...env };
  for (const [variable, owners] of Object.entries(SECRET_OWNERS)) {
    if (owners.includes(kind)) continue;
    delete kept[variable];
    delete kept[`${variable}_FILE`];
  }
  return kept;
}

function spawnService(spec: ServiceSpec, options: StackOptions, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [...(options.nodeArgs?.(spec.name) ?? []), '--import', 'tsx', path.join(ROOT, spec.entry)], {
    cwd: ROOT,
    env: serviceEnv(spec.name, { ...process.env, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killWithParent(child);
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => options.onLine(spec.name, line));
  }
  return child;
}

async function waitForHealth(spec: ServiceSpec, options: StackOptions, child: ChildProcess): Promise<void> {
  const url = `http://127.0.0.1:${typeof spec.port === 'number' ? spec.port : options.ports[spec.port]}${spec.healthPath}`;
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${spec.name} exited with ${child.exitCode ?? child.signalCode} before it was ready (see its log lines above)`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw new Error(`${spec.name} did not become healthy at ${url} within ${timeoutMs} ms`);
}

function terminate(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * The no-Redis fallback: every service in this process, sharing one in-memory
 * store, each still on its own port and talking over real HTTP and gRPC.
 */
async function startInProcess(options: StackOptions, env: Record<string, string>): Promise<Running> {
  Object.assign(process.env, env);
  const { createLogger } = await import('../lib/log');
  const { startGpuServer } = await import('../gpu-server/server');
  const { accessOptions } = await import('../gpu-server/access/options');
  const { buildModels } = await import('../gpu-server/model-builder/build-models');
  const { startInference } = await import('../subgraphs/inference/server');
  const { startAuth } = await import('../subgraphs/auth/server');
  const { startBilling } = await import('../subgraphs/billing/server');
  const { startKnowledge } = await import('../subgraphs/knowledge/server');
  const { startGateway } = await import('../gateway/server');
  const host = env.HOST;
  const repository = path.join(ROOT, 'gpu-server', 'model_repository');
  await buildModels(repository);
  const gpus = await Promise.all(
    gpuServers(options.ports, process.env).map((gpu) =>
      startGpuServer({ repository, host: env.GPU_SERVER_HOST, grpcPort: gpu.grpc, httpPort: gpu.http, metricsPort: gpu.metrics, ...accessOptions([]) }),
    ),
  );
  const config = (name: string, port: number) => ({ host, port, redisUrl: env.REDIS_URL, log: createLogger({ service: name }) });
  const { ports } = options;
  const subgraphs = await Promise.all([
    startInference(config('inference', ports.inference)),
    startAuth(config('auth', ports.auth)),
    startBilling(config('billing', ports.billing)),
    startKnowledge(config('knowledge', ports.knowledge)),
  ]);
  const gateway = await startGateway(config('gateway', ports.gateway), { supergraphConfig: path.join(ROOT, 'supergraph.yaml') });
  return {
    kill: async (name) => {
      throw new Error(`cannot kill ${name}: the stack runs in one process (in-memory mode)`);
    },
    restart: async (name) => {
      throw new Error(`cannot restart ${name}: the stack runs in one process (in-memory mode)`);
    },
    stop: async () => {
      await gateway.stop();
      await Promise.all(subgraphs.map((s) => s.stop()));
      await Promise.all(gpus.map((gpu) => gpu.stop()));
    },
  };
}
