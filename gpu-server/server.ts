/**
 * The gpu-server's composition root: loads the model repository, builds the
 * transport-free InferenceCore, and exposes it over gRPC (Triton's protocol +
 * grpc.health.v1), HTTP (KServe v2 REST and Triton's generate extension) and
 * the metrics port (Prometheus text, Triton's metric names). Access as
 * Triton controls it: restricted categories per protocol (access/), the model
 * control mode (repository/model-control.ts), and a bearer token on /metrics.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { DEFAULT_PORTS } from '../lib/config';
import { createLogger, type Logger } from '../lib/log';
import type { Restrictions } from './access/restrictions';
import { selectBackend } from './backends';
import { InferenceCore } from './core/inference-core';
import { createHealthHandlers, createInferenceHandlers } from './grpc/inference-service';
import { withModelControl } from './grpc/model-control';
import { restrictedProtocolsInterceptor } from './grpc/restricted-protocols';
import { createHttpHandler } from './http/handler';
import { createMetricsHandler } from './metrics/handler';
import { loadTritonProto } from '../protocol/triton/loader';
import { pollRepository, type ModelControlMode } from './repository/model-control';
import { ModelRepository } from './repository/repository';

export interface GpuServerOptions {
  /** The model repository directory (`<repository>/<model>/config.pbtxt`). */
  repository: string;
  /** Interface to bind. @default '0.0.0.0' */
  host?: string;
  /** gRPC port; 0 picks a free one. @default 8001 */
  grpcPort?: number;
  /** HTTP port (KServe v2 REST); 0 picks a free one. @default 8000 */
  httpPort?: number;
  /** Metrics port (`GET /metrics`, Prometheus text); 0 picks a free one. @default 8002 */
  metricsPort?: number;
  /** Largest HTTP request body accepted (413 beyond). @default 64 MiB */
  maxHttpBodyBytes?: number;
  /** How long stop() waits for in-flight requests. @default 10000 ms */
  drainTimeoutMs?: number;
  /** `--model-control-mode`: whether load/unload are allowed, or the repository is polled. @default 'none' (as Triton) */
  modelControlMode?: ModelControlMode;
  /** `--repository-poll-secs`, in poll mode. @default 15 s (as Triton) */
  repositoryPollMs?: number;
  /** `--grpc-restricted-protocol`: categories whose gRPC calls need a header. @default none */
  grpcRestrictions?: Restrictions;
  /** `--http-restricted-api`: categories whose HTTP routes need a header. @default none */
  httpRestrictions?: Restrictions;
  /** When set, `GET /metrics` requires `Authorization: Bearer <token>`. @default unset (open, as Triton's) */
  metricsToken?: string;
  logger?: Logger;
}

export interface GpuServer {
  grpcPort: number;
  httpPort: number;
  metricsPort: number;
  /** The transport-free core, for in-process callers and tests. */
  core: InferenceCore;
  /** Refuses new work, lets in-flight requests finish, unloads models, closes every port. Idempotent. */
  stop(): Promise<void>;
}

export async function startGpuServer(options: GpuServerOptions): Promise<GpuServer> {
  const host = options.host ?? '0.0.0.0';
  const wantedGrpcPort = options.grpcPort ?? DEFAULT_PORTS.gpuGrpc;
  const wantedHttpPort = options.httpPort ?? DEFAULT_PORTS.gpuHttp;
  const wantedMetricsPort = options.metricsPort ?? DEFAULT_PORTS.gpuMetrics;
  const logger = options.logger ?? createLogger({ service: 'gpu-server' });
  const repository = await ModelRepository.load({ root: options.repository, selectBackend, logger });
  const core = new InferenceCore(repository);

  const modelControl = options.modelControlMode ?? 'none';
  const stopPolling = modelControl === 'poll' ? pollRepository(repository, options.repository, options.repositoryPollMs ?? 15_000, logger) : undefined;

  const pkg = loadTritonProto();
  const restricted = restrictedProtocolsInterceptor(options.grpcRestrictions ?? new Map());
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    ...(restricted ? { interceptors: [restricted] } : {}),
  });
  grpcServer.addService(pkg.inference.GRPCInferenceService.service, withModelControl(createInferenceHandlers(core, logger), modelControl));
  grpcServer.addService(pkg.grpc.health.v1.Health.service, createHealthHandlers(core));

  const httpServer = http.createServer(createHttpHandler(core, { logger, maxBodyBytes: options.maxHttpBodyBytes, restrictions: options.httpRestrictions, modelControl }));
  const metricsServer = http.createServer(createMetricsHandler(core, logger, options.metricsToken));
  try {
    const grpcPort = await new Promise<number>((resolve, reject) =>
      grpcServer.bindAsync(`${host}:${wantedGrpcPort}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(new Error(`gRPC could not bind ${host}:${wantedGrpcPort}: ${error.message}`)) : resolve(port),
      ),
    );
    const httpPort = await listen(httpServer, host, wantedHttpPort, 'HTTP');
    const metricsPort = await listen(metricsServer, host, wantedMetricsPort, 'metrics');
    core.markReady();

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await stopPolling?.();
        await core.drainAndStop(options.drainTimeoutMs ?? 10_000);
        // Calls still open after the drain (a client that never half-closes) are cut.
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => grpcServer.forceShutdown(), 1_000);
          grpcServer.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
        // Streams still open after the drain (a generate_stream client that
        // never reads) must not keep stop() waiting: close every connection.
        await Promise.all([httpServer, metricsServer].map((server) => closeServer(server)));
        logger.info('stopped');
      })());
    return { grpcPort, httpPort, metricsPort, core, stop };
  } catch (error) {
    await stopPolling?.();
    grpcServer.forceShutdown();
    await Promise.all([httpServer, metricsServer].map((server) => closeServer(server)));
    await repository.close();
    throw error;
  }
}

function listen(server: http.Server, host: string, port: number, what: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once('error', (error) => reject(new Error(`${what} could not bind ${host}:${port}: ${error.message}`)));
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: http.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}
