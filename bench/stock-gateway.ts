/**
 * The baseline of bench/gateway-throughput.ts: stock `@apollo/gateway` +
 * `@apollo/server` with their defaults (`startStandaloneServer`, one process),
 * composing the same supergraph as Sluice's gateway from supergraph.yaml (the
 * stack's SLUICE_SUBGRAPH_<NAME>_URL routing URLs). Our subgraphs refuse a
 * fetch without a signed identity, so every fetch carries one header signed
 * once at start-up for the benchmark's user (STOCK_GATEWAY_SUB,
 * STOCK_GATEWAY_SCOPES) with the stack's SLUICE_IDENTITY_PRIVATE_KEY and a
 * long TTL: the stock gateway does no authentication of its own, which only
 * flatters it. Or, for a foreign graph (STOCK_GATEWAY_SUPERGRAPH_FILE: its
 * subgraphs expect no identity), it serves that supergraph file as it is and
 * signs nothing.
 *
 * Run as a script it serves on STOCK_GATEWAY_PORT; imported, it spawns itself
 * in a child process (`startStockGateway`), so that it never shares an event
 * loop with the load generator.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ApolloGateway, RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { freePort } from '../scripts/free-port';
import { IDENTITY_HEADER, identitySignerFromEnv } from '../lib/identity';
import { FORWARDS_IDENTITY_TO } from '../lib/service-calls';
import { supergraphForGateway } from '../gateway/auth/authorization/gateway-supergraph';
import { composeSupergraph, readSupergraphConfig } from '../gateway/supergraph';

const ROOT = path.resolve(__dirname, '..');
/** Long enough for any benchmark run: the header is signed once. */
const IDENTITY_TTL_SECONDS = 6 * 3600;

export interface StockGateway {
  url: string;
  stop(): Promise<void>;
}

/**
 * The graph an anchor gateway serves: Sluice's (the stack's environment, every
 * fetch signed for user `sub` with `scopes`), or a foreign supergraph file.
 */
export type AnchorGraph = { stackEnv: Record<string, string>; sub: string; scopes: readonly string[] } | { supergraphFile: string };

/** The environment that tells an anchor's process (`unauthenticatedGatewaySetup`) which graph it serves. */
export function anchorEnv(graph: AnchorGraph): Record<string, string> {
  if ('supergraphFile' in graph) return { STOCK_GATEWAY_SUPERGRAPH_FILE: graph.supergraphFile };
  return { ...graph.stackEnv, STOCK_GATEWAY_SUB: graph.sub, STOCK_GATEWAY_SCOPES: graph.scopes.join(',') };
}

/** Spawns the stock gateway on a free port, serving `graph`. */
export async function startStockGateway(graph: AnchorGraph): Promise<StockGateway> {
  const port = await freePort();
  return spawnGateway('the stock gateway', [process.execPath, '--import', 'tsx', __filename], {
    cwd: ROOT,
    env: { ...process.env, ...anchorEnv(graph), STOCK_GATEWAY_PORT: String(port) },
    url: `http://127.0.0.1:${port}/graphql`,
  });
}

/** Runs `command` (a gateway, or a benchmark's subgraph, in its own process) and waits until it answers `{ __typename }` at `url`; `stop` ends it, then calls `cleanUp`. */
export async function spawnGateway(label: string, [file, ...args]: string[], options: { cwd: string; env: NodeJS.ProcessEnv; url: string; cleanUp?: () => void }): Promise<StockGateway> {
  const child = spawn(file, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = () =>
    fetch(options.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' }).then(
      (r) => r.ok,
      () => false,
    );
  for (let i = 0; !(await ready()); i++) {
    if (i > 600 || child.exitCode !== null) {
      child.kill('SIGKILL');
      options.cleanUp?.();
      throw new Error(`${label} did not answer { __typename } at ${options.url} within 60 s (exit ${child.exitCode ?? 'none'})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url: options.url,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      options.cleanUp?.();
    },
  };
}

/**
 * What a gateway that authenticates nothing needs, in a process started with
 * `anchorEnv`: the supergraph with the stack's routing URLs and the one
 * identity header (STOCK_GATEWAY_SUB, STOCK_GATEWAY_SCOPES) every subgraph
 * fetch carries; or a foreign supergraph file and no identity. Hive Gateway's
 * configuration uses it too.
 */
export function unauthenticatedGatewaySetup(): { supergraphSdl: string; identity: string | undefined } {
  const foreign = process.env.STOCK_GATEWAY_SUPERGRAPH_FILE;
  if (foreign) return { supergraphSdl: readFileSync(foreign, 'utf8'), identity: undefined };
  const sub = process.env.STOCK_GATEWAY_SUB;
  if (!sub) throw new Error('STOCK_GATEWAY_SUB is required: the user id every subgraph fetch is signed for');
  const scopes = (process.env.STOCK_GATEWAY_SCOPES ?? '').split(',').filter(Boolean);
  return {
    supergraphSdl: supergraphForGateway(composeSupergraph(readSupergraphConfig(path.join(ROOT, 'supergraph.yaml')))),
    identity: identitySignerFromEnv(IDENTITY_TTL_SECONDS).sign({ sub, scopes }, Object.keys(FORWARDS_IDENTITY_TO)),
  };
}

async function serve(): Promise<void> {
  const { supergraphSdl, identity } = unauthenticatedGatewaySetup();
  class SignedFetches extends RemoteGraphQLDataSource {
    override willSendRequest({ request }: GraphQLDataSourceProcessOptions): void {
      if (identity) request.http?.headers.set(IDENTITY_HEADER, identity);
    }
  }
  const server = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl, buildService: ({ url }) => new SignedFetches({ url }) }) });
  await startStandaloneServer(server, { listen: { host: '127.0.0.1', port: Number(process.env.STOCK_GATEWAY_PORT ?? 0) } });
  process.once('SIGTERM', () => void server.stop().then(() => process.exit(0)));
}

if (require.main === module) {
  serve().catch((error: unknown) => {
    process.stderr.write(`stock gateway: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
