import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { composeSupergraph, CompositionError, readSupergraphConfig } from './supergraph';

/** `npm run compose [-- <supergraph.yaml> <out.graphql>]`: writes the composed supergraph SDL. */
const root = path.resolve(__dirname, '..');
const configFile = path.resolve(process.argv[2] ?? path.join(root, 'supergraph.yaml'));
const outFile = path.resolve(process.argv[3] ?? path.join(root, 'supergraph.graphql'));
try {
  writeFileSync(outFile, composeSupergraph(readSupergraphConfig(configFile)));
  process.stdout.write(`wrote ${path.relative(process.cwd(), outFile)} from ${path.relative(process.cwd(), configFile)}\n`);
} catch (error) {
  process.stderr.write(`${error instanceof CompositionError ? error.message : String(error)}\n`);
  process.exit(1);
}
