import path from 'node:path';
import { runService } from '../lib/run-service';
import { startGateway } from './server';

/**
 * `gateway/main.ts [--supergraph <file>] [--config <supergraph.yaml>]`: serves
 * a ready supergraph SDL when given one, else composes the rover config.
 */
function argument(flag: string): string | undefined {
  const index = process.argv.indexOf(flag);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

const supergraphFile = argument('--supergraph') ?? process.env.GATEWAY_SUPERGRAPH_FILE;
const supergraphConfig = argument('--config') ?? path.resolve(__dirname, '..', 'supergraph.yaml');

runService('gateway', (config) =>
  startGateway(config, supergraphFile ? { supergraphFile: path.resolve(supergraphFile) } : { supergraphConfig }),
);
