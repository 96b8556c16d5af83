import { availableParallelism } from 'node:os';
import path from 'node:path';
import { envInt } from '../lib/config';
import { createLogger } from '../lib/log';
import { runService } from '../lib/run-service';
import { runWorkers } from './workers';

/**
 * `gateway/main.ts [--supergraph <file>] [--config <supergraph.yaml>]`: serves
 * a ready supergraph SDL when given one, else composes the rover config, in
 * GATEWAY_WORKERS processes (default: one per core).
 */
function argument(flag: string): string | undefined {
  const index = process.argv.indexOf(flag);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

const supergraphFile = argument('--supergraph') ?? process.env.GATEWAY_SUPERGRAPH_FILE;
const supergraphConfig = argument('--config') ?? path.resolve(__dirname, '..', 'supergraph.yaml');

runWorkers(envInt('GATEWAY_WORKERS', availableParallelism(), { min: 1, max: 256 }), createLogger(), () => {
  // Loaded in workers only: the primary serves nothing and need not hold the gateway.
  void import('./server').then(({ startGateway }) => runService('gateway', (config) => startGateway(config, supergraphFile ? { supergraphFile: path.resolve(supergraphFile) } : { supergraphConfig })));
});
