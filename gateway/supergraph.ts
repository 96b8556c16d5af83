import { readFileSync } from 'node:fs';
import path from 'node:path';
import { composeServices } from '@apollo/composition';
import { GraphQLError, parse, Source } from 'graphql';
import YAML from 'yaml';

/**
 * Where the supergraph comes from: composed at start-up from the rover-format
 * `supergraph.yaml` and the subgraphs' schema files, or read ready-made from a
 * file (`--supergraph`, for example one composed by rover in CI).
 */
export interface SubgraphEntry {
  name: string;
  url: string;
  schemaFile: string;
}

export class CompositionError extends Error {
  override name = 'CompositionError';
  constructor(readonly details: string[]) {
    super(`supergraph composition failed with ${details.length} error(s):\n${details.map((d) => `  - ${d}`).join('\n')}`);
  }
}

/** `SLUICE_SUBGRAPH_<NAME>_URL`, which overrides a subgraph's routing URL in either mode. */
export function subgraphUrlOverride(name: string): string | undefined {
  return process.env[`SLUICE_SUBGRAPH_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`] || undefined;
}

/** Reads rover's supergraph config: `subgraphs: <name>: { routing_url, schema: { file } }`. */
export function readSupergraphConfig(configFile: string): SubgraphEntry[] {
  const doc = YAML.parse(readFileSync(configFile, 'utf8')) as { subgraphs?: Record<string, { routing_url?: string; schema?: { file?: string } }> };
  if (!doc?.subgraphs || typeof doc.subgraphs !== 'object') {
    throw new CompositionError([`${configFile}: expected a "subgraphs" map as in rover's supergraph.yaml`]);
  }
  return Object.entries(doc.subgraphs).map(([name, entry]) => {
    if (!entry?.routing_url || !entry.schema?.file) {
      throw new CompositionError([`${configFile}: subgraph "${name}" expects "routing_url" and "schema.file"`]);
    }
    return { name, url: entry.routing_url, schemaFile: path.resolve(path.dirname(configFile), entry.schema.file) };
  });
}

/** Composes the subgraphs into a supergraph SDL, or throws a CompositionError naming subgraphs and locations. */
export function composeSupergraph(subgraphs: SubgraphEntry[]): string {
  const parseErrors: string[] = [];
  const services = subgraphs.flatMap((subgraph) => {
    try {
      const typeDefs = parse(new Source(readFileSync(subgraph.schemaFile, 'utf8'), subgraph.schemaFile));
      return [{ name: subgraph.name, url: subgraphUrlOverride(subgraph.name) ?? subgraph.url, typeDefs }];
    } catch (error) {
      parseErrors.push(`[${subgraph.name}] ${describe(error as Error)}`);
      return [];
    }
  });
  if (parseErrors.length > 0) throw new CompositionError(parseErrors);
  const result = composeServices(services);
  if (result.errors) throw new CompositionError(result.errors.map(describe));
  return result.supergraphSdl;
}

function describe(error: Error): string {
  if (!(error instanceof GraphQLError)) return error.message;
  const places = (error.nodes ?? []).map((node) => node.loc && `${node.loc.source.name}:${node.loc.source.locationOffset.line + lineOf(node.loc.source.body, node.loc.start) - 1}`).filter(Boolean);
  const fromLocations = error.source && error.locations ? error.locations.map((l) => `${error.source?.name}:${l.line}:${l.column}`) : [];
  const where = [...new Set([...places, ...fromLocations])];
  const code = (error.extensions?.code as string | undefined) ?? '';
  return `${code ? `${code}: ` : ''}${error.message}${where.length ? ` (at ${where.join(', ')})` : ''}`;
}

function lineOf(body: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < body.length; i++) if (body.charCodeAt(i) === 10) line++;
  return line;
}
