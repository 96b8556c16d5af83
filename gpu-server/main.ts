/**
 * The gpu-server process. Environment:
 * - GPU_SERVER_HOST (default 0.0.0.0)
 * - GPU_SERVER_GRPC_PORT (default 8001), GPU_SERVER_HTTP_PORT (default 8000),
 *   GPU_SERVER_METRICS_PORT (default 8002)
 * - GPU_SERVER_MODEL_REPOSITORY (default gpu-server/model_repository)
 * - access: Triton's --model-control-mode, --repository-poll-secs,
 *   --grpc-restricted-protocol, --http-restricted-api as arguments or their
 *   variables, and GPU_SERVER_METRICS_TOKEN (access/options.ts)
 * Builds missing model files first, then serves until SIGTERM/SIGINT, when it
 * drains in-flight requests and exits.
 */
import * as path from 'node:path';
import { envPort, envString } from '../lib/config';
import { createLogger } from '../lib/log';
import { exitOnSignals } from '../lib/signals';
import { accessOptions } from './access/options';
import { buildModels } from './model-builder/build-models';
import { startGpuServer } from './server';

const logger = createLogger({ service: 'gpu-server' });

async function main(): Promise<void> {
  const repository = path.resolve(envString('GPU_SERVER_MODEL_REPOSITORY', path.join('gpu-server', 'model_repository')));
  const options = {
    repository,
    host: envString('GPU_SERVER_HOST', '0.0.0.0'),
    grpcPort: envPort('gpuGrpc'),
    httpPort: envPort('gpuHttp'),
    metricsPort: envPort('gpuMetrics'),
    ...accessOptions(process.argv.slice(2)),
    logger,
  };
  await buildModels(repository);
  const server = await startGpuServer(options);
  logger.info(`ready grpc=${server.grpcPort} http=${server.httpPort} metrics=${server.metricsPort}`, {
    repository,
    modelControlMode: options.modelControlMode,
    restrictedGrpc: [...options.grpcRestrictions.keys()].join(','),
    restrictedHttp: [...options.httpRestrictions.keys()].join(','),
  });
  exitOnSignals(logger, () => server.stop());
}

main().catch((error: unknown) => {
  logger.error('gpu-server failed to start', { error });
  process.exit(1);
});
