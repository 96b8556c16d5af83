import { envPort, envString, type PortName } from './config';
import { createLogger } from './log';
import type { RunningService, ServiceConfig } from './subgraph-service';

/**
 * The entry point of a service run as its own process: reads `HOST`, the
 * service's `*_PORT` and `REDIS_URL`, starts it, and drains it on SIGTERM or
 * SIGINT. A failure to start is printed and exits non-zero, so the launcher
 * (or an orchestrator) sees it at once.
 */
export function runService(name: PortName, start: (config: ServiceConfig) => Promise<RunningService>): void {
  const log = createLogger();
  let config: ServiceConfig;
  try {
    config = {
      host: envString('HOST', '0.0.0.0'),
      port: envPort(name),
      redisUrl: envString('REDIS_URL', 'redis://127.0.0.1:6379'),
      log,
    };
  } catch (error) {
    log.error(`${name} cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  start(config).then(
    (service) => service.http.stopOnSignals(),
    (error: unknown) => {
      // The whole message, unescaped: composition errors span several lines.
      log.error(`${name} failed to start: ${(error as Error).message}`);
      process.exit(1);
    },
  );
}
