/**
 * The gpu-server's composition root: loads the model repository, builds the
 * transport-free InferenceCore, and exposes it over gRPC (Triton's protocol +
 * grpc.health.v1) and HTTP (health).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_PORTS } from '../lib/config';
import { createLogger, type Logger } from '../lib/log';
import { selectBackend } from './backends';
import { InferenceCore } from './core/inference-core';
import { createHealthHandlers, createInferenceHandlers } from './grpc/inference-service';
import { createHttpHandler } from './http/health';
import { loadTritonProto } from './proto/load';
import { ModelRepository } from './repository/repository';

export interface GpuServerOptions {
  /** The model repository directory (`<repository>/<model>/config.pbtxt`). */
  repository: string;
  /** Interface to bind. @default '0.0.0.0' */
  host?: string;
  /** gRPC port; 0 picks a free one. @default 8001 */
  grpcPort?: number;
  /** HTTP port; 0 picks a free one. @default 8000 */
  httpPort?: number;
  /** How long stop() waits for in-flight requests. @default 10000 ms */
  drainTimeoutMs?: number;
  logger?: Logger;
}

export interface GpuServer {
  grpcPort: number;
  httpPort: number;
  /** The transport-free core, for in-process callers and tests. */
  core: InferenceCore;
  /** Refuses new work, lets in-flight requests finish, unloads models, closes both ports. Idempotent. */
  stop(): Promise<void>;
}

export async function startGpuServer(options: GpuServerOptions): Promise<GpuServer> {
  const host = options.host ?? '0.0.0.0';
  const wantedGrpcPort = options.grpcPort ?? DEFAULT_PORTS.gpuGrpc;
  const wantedHttpPort = options.httpPort ?? DEFAULT_PORTS.gpuHttp;
  const logger = options.logger ?? createLogger({ service: 'gpu-server' });
  const repository = await ModelRepository.load({ root: options.repository, selectBackend, logger });
  const core = new InferenceCore(repository);

  const pkg = loadTritonProto();
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  grpcServer.addService(pkg.inference.GRPCInferenceService.service, createInferenceHandlers(core, logger));
  grpcServer.addService(pkg.grpc.health.v1.Health.service, createHealthHandlers(core));

  let httpServer: http.Server | undefined;
  try {
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(`${host}:${wantedGrpcPort}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(new Error(`gRPC could not bind ${host}:${wantedGrpcPort}: ${error.message}`)) : resolve(port),
      ),
    );
    const server = http.createServer(createHttpHandler(core));
    httpServer = server;
    const httpPort = await new Promise<number>((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`HTTP could not bind ${host}:${wantedHttpPort}: ${error.message}`)));
      server.listen(wantedHttpPort, host, () => resolve((server.address() as AddressInfo).port));
    });
    core.markReady();

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await core.drainAndStop(options.drainTimeoutMs ?? 10_000);
        await new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
        await new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        logger.info('stopped');
      })());
    return { grpcPort, httpPort, core, stop };
  } catch (error) {
    grpcServer.forceShutdown();
    httpServer?.close();
    await repository.close();
    throw error;
  }
}
