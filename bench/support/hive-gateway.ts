/**
 * Hive Gateway (`@graphql-hive/gateway`), the JavaScript anchor of
 * bench/gateway-throughput.ts, run by its own CLI with
 * hive-gateway.config.ts, on the stock gateway's supergraph and signed
 * identity header (`unauthenticatedGatewaySetup`), or on a foreign supergraph
 * file with no identity: it authenticates nothing, as the stock gateway does
 * not. `tuned` is its public benchmark setting
 * (`--jit` and in-flight deduplication, inbound and outbound); untuned is
 * neither.
 *
 * Run as a script (with the stack's environment) it writes the supergraph to
 * a temporary file and runs the CLI on it, on HIVE_BENCH_PORT, until SIGTERM;
 * imported, `startHiveGateway` spawns that script. The CLI is a process of
 * its own because it loads its configuration as an ES module.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../scripts/free-port';
import { type AnchorGraph, anchorEnv, spawnGateway, type StockGateway, unauthenticatedGatewaySetup } from '../stock-gateway';

const ROOT = path.resolve(__dirname, '../..');

export async function startHiveGateway(graph: AnchorGraph, tuned: boolean): Promise<StockGateway> {
  const port = await freePort();
  return spawnGateway(`Hive Gateway${tuned ? ' (--jit, dedup)' : ''}`, [process.execPath, '--import', 'tsx', __filename], {
    cwd: ROOT,
    env: { ...process.env, ...anchorEnv(graph), HIVE_BENCH_PORT: String(port), HIVE_BENCH_DEDUP: String(tuned) },
    url: `http://127.0.0.1:${port}/graphql`,
  });
}

function serve(): void {
  const { supergraphSdl, identity } = unauthenticatedGatewaySetup();
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-hive-'));
  const supergraphFile = path.join(dir, 'supergraph.graphql');
  writeFileSync(supergraphFile, supergraphSdl);
  const tuned = process.env.HIVE_BENCH_DEDUP === 'true';
  const bin = path.join(ROOT, 'node_modules/@graphql-hive/gateway/dist/bin.js');
  const args = [bin, 'supergraph', supergraphFile, '--host', '127.0.0.1', '--port', process.env.HIVE_BENCH_PORT ?? '4000', '-c', path.join(__dirname, 'hive-gateway.config.ts')];
  const cli = spawn(process.execPath, tuned ? [...args, '--jit'] : args, { env: { ...process.env, ...(identity ? { HIVE_BENCH_IDENTITY: identity } : {}), NODE_ENV: 'production' }, stdio: 'inherit' });
  process.once('SIGTERM', () => cli.kill('SIGTERM'));
  cli.once('exit', (code) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(code ?? 1);
  });
}

if (require.main === module) serve();
