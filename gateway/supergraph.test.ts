import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { composeSupergraph, CompositionError, readSupergraphConfig } from './supergraph';

const ROOT = path.resolve(__dirname, '..');

describe('supergraph composition', () => {
  it('composes the four subgraphs of supergraph.yaml', () => {
    const subgraphs = readSupergraphConfig(path.join(ROOT, 'supergraph.yaml'));
    expect(subgraphs.map((s) => s.name)).toEqual(['auth', 'billing', 'knowledge', 'inference']);
    const sdl = composeSupergraph(subgraphs);
    expect(sdl).toContain('@join__graph(name: "billing", url: "http://localhost:4002/graphql")');
    expect(sdl).toMatch(/type User\s+@join__type\(graph: AUTH, key: "id"\)/);
  });

  it('applies SLUICE_SUBGRAPH_<NAME>_URL overrides', () => {
    process.env.SLUICE_SUBGRAPH_BILLING_URL = 'http://billing.internal:9/graphql';
    try {
      expect(composeSupergraph(readSupergraphConfig(path.join(ROOT, 'supergraph.yaml')))).toContain('url: "http://billing.internal:9/graphql"');
    } finally {
      delete process.env.SLUICE_SUBGRAPH_BILLING_URL;
    }
  });

  it('names the subgraphs and locations of a composition error', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'compose-'));
    const link = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])\n';
    writeFileSync(path.join(dir, 'a.graphql'), `${link}type Query { a: Thing }\ntype Thing { id: ID! }\n`);
    writeFileSync(path.join(dir, 'b.graphql'), `${link}type Query { b: Thing }\ntype Thing { id: String! }\n`);
    writeFileSync(
      path.join(dir, 'supergraph.yaml'),
      'subgraphs:\n  alpha:\n    routing_url: http://a\n    schema: { file: ./a.graphql }\n  beta:\n    routing_url: http://b\n    schema: { file: ./b.graphql }\n',
    );
    let error: unknown;
    try {
      composeSupergraph(readSupergraphConfig(path.join(dir, 'supergraph.yaml')));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CompositionError);
    const message = (error as Error).message;
    expect(message).toContain('"alpha"');
    expect(message).toContain('"beta"');
    expect(message).toContain('a.graphql:3');
    expect(message).toContain('b.graphql:3');
  });

  it('reports a schema that does not parse with its subgraph name and position', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'compose-'));
    writeFileSync(path.join(dir, 'bad.graphql'), 'type Query {\n  broken(\n}\n');
    writeFileSync(path.join(dir, 'supergraph.yaml'), 'subgraphs:\n  bad:\n    routing_url: http://x\n    schema: { file: ./bad.graphql }\n');
    expect(() => composeSupergraph(readSupergraphConfig(path.join(dir, 'supergraph.yaml')))).toThrow(/\[bad\] Syntax Error: .*bad\.graphql:3:1/);
  });
});
