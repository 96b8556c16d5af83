/**
 * gpu-server PROCESSES (`node --import tsx gpu-server/main.ts`), each with its
 * own model repository and ports, for the router's end-to-end test and
 * benchmark: several GPU endpoints on one machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PROJECT_REPOSITORY } from '../../gpu-server/testing/temp-repository';
import { freePort } from '../../scripts/free-port';
import { GrpcStatus, isGrpcError, TritonClient } from '../../subgraphs/inference/gpu-tier/triton-client';

const ROOT = path.join(__dirname, '..', '..');

export interface GpuProcess {
  /** host:port of its gRPC endpoint. */
  address: string;
  child: ChildProcess;
  /** Its stdout and stderr, kept for failure messages. */
  output: string[];
  ports: { grpc: number; http: number; metrics: number };
}

/** A temporary repository holding copies of these models of the project's repository (built already). */
export function repositoryOf(models: readonly string[], label: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `sluice-${label}-`));
  for (const model of models) cpSync(path.join(PROJECT_REPOSITORY, model), path.join(dir, model), { recursive: true });
  return dir;
}

/** Starts a gpu-server process on `repository` (on `ports`, else free ones) and resolves once it answers ServerReady. */
export async function startGpuProcess(repository: string, ports?: GpuProcess['ports']): Promise<GpuProcess> {
  const p = ports ?? { grpc: await freePort(), http: await freePort(), metrics: await freePort() };
  const child = spawn(process.execPath, ['--import', 'tsx', 'gpu-server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      GPU_SERVER_MODEL_REPOSITORY: repository,
      GPU_SERVER_HOST: '127.0.0.1',
      GPU_SERVER_GRPC_PORT: String(p.grpc),
      GPU_SERVER_HTTP_PORT: String(p.http),
      GPU_SERVER_METRICS_PORT: String(p.metrics),
      SLUICE_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
  const address = `127.0.0.1:${p.grpc}`;
  const client = new TritonClient(address, 1_000);
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the gpu-server on ${address} exited with ${child.exitCode} before it was ready:\n${output.join('')}`);
      if (
        await client.serverReady().then(
          (r) => r.ready,
          () => false,
        )
      )
        break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    client.close();
  }
  return { address, child, output, ports: p };
}

/** Stops the process (SIGTERM: it drains; SIGKILL: it dies at once) and resolves when it has exited. */
export function stopGpuProcess(gpu: GpuProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (gpu.child.exitCode !== null || gpu.child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => gpu.child.once('exit', () => resolve()));
  gpu.child.kill(signal);
  return exited;
}

/** Successful inferences (samples) of `model` on a server so far, from its ModelStatistics; 0 where the server does not serve it. */
export async function inferenceCount(address: string, model: string): Promise<number> {
  const client = new TritonClient(address, 5_000);
  try {
    return (await client.modelStatistics(model)).model_stats.reduce((n, s) => n + Number(s.inference_count), 0);
  } catch (error) {
    if (isGrpcError(error) && error.code === GrpcStatus.NOT_FOUND) return 0;
    throw error;
  } finally {
    client.close();
  }
}
