import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Supergraph } from '@apollo/federation-internals';
import { printSchema } from 'graphql';
import { supergraphForGateway } from '../gateway/auth/authorization/gateway-supergraph';
import { composeSupergraph, readSupergraphConfig } from '../gateway/supergraph';
import { WEB_APP_BUILD } from '../gateway/web-app/web-app-handler';

/**
 * Builds the web app (web/) into web/dist, which the gateway serves at /app/:
 * the API schema of the composed supergraph → typed documents (GraphQL Code
 * Generator) → a type check of the app → Vite's production bundle. The types
 * come from the schema the gateway will serve, so a subgraph change that
 * breaks a query or a field the app reads stops the build here.
 *
 * `npm start` calls `ensureWebAppBuilt`, which builds only when the sources'
 * hash differs from the one the last build recorded (mtimes change on every
 * checkout; contents do not).
 *
 *   tsx scripts/web-app-build.ts          build (npm run build:web)
 *   tsx scripts/web-app-build.ts --dev    types, then Vite's dev server proxying /graphql to the gateway (npm run dev:web)
 */
const ROOT = path.resolve(__dirname, '..');
const WEB = path.join(ROOT, 'web');
const STAMP = path.join(WEB_APP_BUILD, '.source-hash');
const VITE_CONFIG = path.join(WEB, 'vite.config.mts');

/** Everything the bundle is made from: the app, its configuration, the schemas its types come from, the locked dependencies. */
function sourceFiles(): string[] {
  const files = ['index.html', 'vite.config.mts', 'codegen.ts', 'tsconfig.json'].map((f) => path.join(WEB, f));
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (full !== path.join(WEB, 'src', 'gql')) walk(full);
      } else if (!entry.name.endsWith('.spec.ts')) files.push(full);
    }
  };
  walk(path.join(WEB, 'src'));
  for (const subgraph of readdirSync(path.join(ROOT, 'subgraphs'))) {
    const schema = path.join(ROOT, 'subgraphs', subgraph, 'schema.graphql');
    if (existsSync(schema)) files.push(schema);
  }
  files.push(path.join(ROOT, 'supergraph.yaml'), path.join(ROOT, 'package-lock.json'));
  return files.sort();
}

/** A hash of every source file's path and content. */
export function webAppSourceHash(): string {
  const hash = createHash('sha256');
  for (const file of sourceFiles()) hash.update(path.relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex');
}

/**
 * Writes web/schema.graphql: the schema clients see (the supergraph's API
 * schema, without federation's machinery), built as the gateway builds it.
 */
function writeApiSchema(): void {
  const supergraph = supergraphForGateway(composeSupergraph(readSupergraphConfig(path.join(ROOT, 'supergraph.yaml'))));
  const api = Supergraph.build(supergraph).apiSchema().toGraphQLJSSchema();
  writeFileSync(path.join(WEB, 'schema.graphql'), printSchema(api));
}

async function generateTypes(): Promise<void> {
  writeApiSchema();
  const { generate } = await import('@graphql-codegen/cli');
  const config = (await import('../web/codegen')).default;
  await generate({ ...config, cwd: ROOT, silent: true }, true);
}

function typecheck(): void {
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(WEB, 'tsconfig.json')], { cwd: ROOT, encoding: 'utf8' });
  if (tsc.status !== 0) throw new Error(`the web app does not type-check against the current schema:\n${tsc.stdout}${tsc.stderr}`);
}

/**
 * Vite is an ES module whose package exposes its types only through `exports`,
 * which the project's CommonJS type resolution does not read: the types are
 * taken from the file itself, and the module is loaded by name at run time.
 */
type Vite = typeof import('vite/dist/node/index');
const loadVite = (): Promise<Vite> => import(VITE_MODULE) as Promise<Vite>;
const VITE_MODULE = 'vite';

/** Builds web/dist from scratch and records the sources' hash in it. */
export async function buildWebApp(): Promise<void> {
  const hash = webAppSourceHash();
  await generateTypes();
  typecheck();
  const vite = await loadVite();
  await vite.build({ configFile: VITE_CONFIG, logLevel: 'warn' });
  mkdirSync(WEB_APP_BUILD, { recursive: true });
  writeFileSync(STAMP, hash);
}

/** True when web/dist was built from the sources as they are now. */
export function isWebAppBuilt(): boolean {
  return existsSync(STAMP) && readFileSync(STAMP, 'utf8') === webAppSourceHash();
}

const LOCK = path.join(WEB, '.build.lock');

/**
 * Takes the build lock (web/.build.lock, holding the builder's pid), waiting
 * while another live process holds it: `npm start` and a test run may both
 * find the build stale, and two Vite builds into one folder would mix their
 * files. A lock whose process is gone (killed mid-build) is taken over.
 */
async function acquireBuildLock(signal?: AbortSignal): Promise<() => void> {
  for (;;) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      return () => rmSync(LOCK, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(readFileSync(LOCK, 'utf8'));
    if (!isAlive(holder)) rmSync(LOCK, { force: true });
    else await new Promise((resolve) => setTimeout(resolve, 250));
    signal?.throwIfAborted();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Builds the web app when it is missing or stale, in a child process (Vite and
 * the code generator are ES modules with their own memory; a caller such as a
 * jest test cannot load them), passing its output lines to `log`. Aborting
 * `signal` kills the build.
 */
export async function ensureWebAppBuilt(log: (line: string) => void, signal?: AbortSignal): Promise<void> {
  if (isWebAppBuilt()) return;
  const release = await acquireBuildLock(signal);
  try {
    // Another process may have built it while this one waited for the lock.
    if (isWebAppBuilt()) return;
    log(existsSync(STAMP) ? 'the web app changed since it was built: building it again…' : 'the web app is not built yet: building it…');
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', __filename], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], signal });
    const output: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8').on('data', (text: string) => output.push(...text.split('\n').filter(Boolean)));
    }
    const code = await new Promise<number | null>((resolve, reject) => child.on('error', reject).on('close', resolve));
    output.forEach((line) => log(line));
    if (code !== 0) throw new Error(`the web app build failed (exit ${code}); its output is above`);
    log(`web app built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    release();
  }
}

async function serveDev(): Promise<void> {
  await generateTypes();
  const vite = await loadVite();
  const server = await vite.createServer({ configFile: VITE_CONFIG });
  await server.listen();
  server.printUrls();
}

if (require.main === module) {
  (process.argv.includes('--dev') ? serveDev() : buildWebApp()).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
