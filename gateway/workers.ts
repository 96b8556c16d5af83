import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../lib/log';
import { relayCredentialAnswers } from './auth/credentials/shared-answers';
import { aggregateWorkerMetrics } from './metrics/cluster-metrics';

/** More restarts than this within a minute mean something a restart will not fix: the gateway stops instead. */
const MAX_RESTARTS_PER_MINUTE = 5;

/**
 * One gateway process per core (issue 7): the primary forks `count` workers
 * that share the listening port (Node's cluster module hands connections out
 * round-robin) and nothing else — all shared state lives in Redis, so a
 * worker is like a replica. The primary serves nothing itself. It restarts a
 * worker that dies after it started serving (unless they keep dying), stops
 * everything when one fails to start (so `npm start` fails fast), and on
 * SIGTERM or SIGINT passes SIGTERM on and exits once every worker has drained.
 */
export function runWorkers(count: number, log: Logger, runWorker: () => void): void {
  if (count <= 1 || !cluster.isPrimary) {
    runWorker();
    return;
  }
  // One /metrics scrape, whichever worker answers it, reports the sum of all workers.
  aggregateWorkerMetrics();
  // A session one worker checked with auth, and auth's keys, are known to all (even a worker started later), so an auth outage refuses no caller a worker has not seen.
  relayCredentialAnswers();
  let stopping = false;
  let exitCode = 0;
  const live = new Set<Worker>();
  const stopAll = (code: number) => {
    exitCode ||= code;
    if (!stopping) {
      stopping = true;
      for (const worker of live) worker.process.kill('SIGTERM');
    }
    if (live.size === 0) process.exit(exitCode);
  };
  const restarts: number[] = [];
  const fork = () => {
    let listening = false;
    const worker = cluster.fork();
    live.add(worker);
    worker.once('listening', () => (listening = true));
    worker.once('exit', (code, signal) => {
      live.delete(worker);
      if (stopping) return stopAll(0);
      if (!listening) {
        log.error('a gateway worker stopped before it could serve; stopping the gateway', { pid: worker.process.pid, code, signal });
        return stopAll(code || 1);
      }
      const now = Date.now();
      restarts.push(now);
      while (restarts[0] < now - 60_000) restarts.shift();
      if (restarts.length > MAX_RESTARTS_PER_MINUTE) {
        log.error(`gateway workers died ${restarts.length} times within a minute; stopping the gateway`, { pid: worker.process.pid, code, signal });
        return stopAll(code || 1);
      }
      log.warn('a gateway worker died; starting another', { pid: worker.process.pid, code, signal });
      fork();
    });
  };
  for (let i = 0; i < count; i++) fork();
  log.info('gateway workers started', { workers: count });
  process.once('SIGTERM', () => stopAll(0));
  process.once('SIGINT', () => stopAll(0));
}
