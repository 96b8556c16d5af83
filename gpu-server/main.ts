/**
 * The gpu-server process. Environment:
 * - GPU_SERVER_HOST (default 0.0.0.0)
 * - GPU_SERVER_GRPC_PORT (default 8001), GPU_SERVER_HTTP_PORT (default 8000)
 * - GPU_SERVER_MODEL_REPOSITORY (default gpu-server/model_repository)
 * Builds missing model files first, then serves until SIGTERM/SIGINT, when it
 * drains in-flight requests and exits.
 */
import * as path from 'node:path';
import { createLogger } from '../lib/log';
import { buildModels } from './scripts/build-models';
import { startGpuServer } from './server';

const logger = createLogger({ service: 'gpu-server' });

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} expects a port number 0-65535, but got '${raw}'`);
  return value;
}

async function main(): Promise<void> {
  const repository = path.resolve(process.env.GPU_SERVER_MODEL_REPOSITORY ?? path.join('gpu-server', 'model_repository'));
  await buildModels(repository);
  const server = await startGpuServer({
    repository,
    host: process.env.GPU_SERVER_HOST ?? '0.0.0.0',
    grpcPort: port('GPU_SERVER_GRPC_PORT', 8001),
    httpPort: port('GPU_SERVER_HTTP_PORT', 8000),
    logger,
  });
  logger.info(`ready grpc=${server.grpcPort} http=${server.httpPort}`, { repository });
  const shutdown = (signal: string) => {
    logger.info('draining', { signal });
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('stop failed', { error });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((error: unknown) => {
  logger.error('gpu-server failed to start', { error });
  process.exit(1);
});
