/**
 * Two replicas of every service on loopback, each tier behind one
 * round-robin address (round-robin-proxy.ts), what Kubernetes Services give
 * a deployment with two replicas: the client reaches the gateways through
 * one URL, the gateways each subgraph through one, inference billing through
 * one, and so on. It is two scripts/stack.ts launches (replica A and B)
 * sharing their secrets, one Redis (or Redis Cluster) and the GPU endpoints,
 * each service's peer URLs pointing at the proxies. The scale-out benchmark
 * and the rolling-restart chaos scenario run on it.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { generateIdentityKeyPair } from '../../lib/identity';
import { gpuServers, type ServiceName, type Stack, type StackPorts, startStack } from '../../scripts/stack';
import { type RoundRobinProxy, startRoundRobinProxy } from './round-robin-proxy';
import { freeStackPorts } from './stack';

export const SUBGRAPHS = ['auth', 'billing', 'knowledge', 'inference'] as const;

export interface ReplicaGpu {
  stack: 'a' | 'b';
  name: ServiceName;
  /** Its gRPC address, as the inference router names it. */
  address: string;
}

export type ReplicatedService = 'gateway' | (typeof SUBGRAPHS)[number];

export interface ReplicatedStack {
  /** The gateways' shared address. */
  gatewayUrl: string;
  /** Each tier's shared address (a Service), in front of A's and B's ports. */
  proxies: Record<ReplicatedService, RoundRobinProxy>;
  a: Stack;
  b: Stack;
  /** Every gpu-server, A's first; each inference replica routes to all of them. */
  gpus: ReplicaGpu[];
  stop(): Promise<void>;
}

export interface ReplicatedStackOptions {
  /** `REDIS_URL` of both replicas; a Redis Cluster goes in `env` (REDIS_CLUSTER_NODES) with its URL here. */
  redisUrl: string;
  dataDir: string;
  /** gpu-servers run by replica A and by replica B. */
  gpuServers: { a: number; b: number };
  /** Extra environment for every service of both replicas. */
  env?: Record<string, string>;
  onLine: (service: string, line: string) => void;
  startTimeoutMs?: number;
}

/** Secrets every replica of a service must share (the identity keys, auth's sealing key, the GPU key, the metrics token): both launches read them from this process's environment. */
function shareSecrets(): void {
  const secret = () => randomBytes(24).toString('base64url');
  const keys = generateIdentityKeyPair();
  process.env.SLUICE_IDENTITY_PRIVATE_KEY ??= keys.privateKeyPem;
  process.env.SLUICE_IDENTITY_PUBLIC_KEY ??= keys.publicKeyPem;
  process.env.AUTH_SESSION_SEALING_KEY ??= secret();
  process.env.INFERENCE_GPU_SERVER_KEY ??= `sluice-gpu-key=${secret()}`;
  process.env.SLUICE_METRICS_TOKEN ??= secret();
}

export async function startReplicatedStack(options: ReplicatedStackOptions): Promise<ReplicatedStack> {
  shareSecrets();
  const proxies: RoundRobinProxy[] = [];
  const stacks: Stack[] = [];
  const stop = async () => {
    for (const stack of stacks) await stack.stop();
    for (const proxy of proxies) await proxy.stop();
  };
  try {
    const [portsA, portsB] = [await freeStackPorts(), await freeStackPorts()];
    const proxy = async (name: keyof StackPorts) => {
      const started = await startRoundRobinProxy([portsA[name], portsB[name]]);
      proxies.push(started);
      return started;
    };
    const gateway = await proxy('gateway');
    const [auth, billing, knowledge, inference] = await Promise.all(SUBGRAPHS.map(proxy));
    const gpusA = gpuServers(portsA, { SLUICE_GPU_SERVERS: String(options.gpuServers.a) });
    // B's ports were taken last: its gpu-servers past the first (its ports plus 10 each, scripts/stack.ts) clash with none taken here.
    const gpusB = gpuServers(portsB, { SLUICE_GPU_SERVERS: String(options.gpuServers.b) });
    const gpus = [...gpusA.map((gpu) => ({ stack: 'a' as const, gpu })), ...gpusB.map((gpu) => ({ stack: 'b' as const, gpu }))].map(({ stack, gpu }) => ({
      stack,
      name: gpu.name,
      address: `127.0.0.1:${gpu.grpc}`,
    }));
    const shared = {
      SLUICE_SUBGRAPH_AUTH_URL: auth.url('/graphql'),
      SLUICE_SUBGRAPH_BILLING_URL: billing.url('/graphql'),
      SLUICE_SUBGRAPH_KNOWLEDGE_URL: knowledge.url('/graphql'),
      SLUICE_SUBGRAPH_INFERENCE_URL: inference.url('/graphql'),
      GATEWAY_AUTH_JWKS_URL: auth.url('/.well-known/jwks.json'),
      GATEWAY_AUTH_URL: auth.url(),
      INFERENCE_BILLING_URL: billing.url(),
      INFERENCE_GPU_ENDPOINTS: gpus.map((gpu) => gpu.address).join(','),
      ...options.env,
    };
    const launch = (ports: StackPorts, replica: 'a' | 'b') =>
      startStack({
        ports,
        redisUrl: options.redisUrl,
        dataDir: path.join(options.dataDir, replica),
        host: '127.0.0.1',
        env: { ...shared, SLUICE_GPU_SERVERS: String(options.gpuServers[replica]) },
        onLine: (service, line) => options.onLine(`${replica}:${service}`, line),
        startTimeoutMs: options.startTimeoutMs ?? 180_000,
      });
    // One after the other: the 2-core machine starts a stack's processes faster than it starts two stacks' at once.
    stacks.push(await launch(portsA, 'a'));
    stacks.push(await launch(portsB, 'b'));
    return { gatewayUrl: gateway.url('/graphql'), proxies: { gateway, auth, billing, knowledge, inference }, a: stacks[0], b: stacks[1], gpus, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
