/**
 * The second half of `npm run build`: tsc emits JavaScript only, but the
 * services read files that sit beside their code (each subgraph's
 * schema.graphql, billing's prices.yaml, the Triton .proto files) and the
 * gateway reads supergraph.yaml and the web app's build from the project root
 * as seen from its own directory. Copying them to the same places under dist/
 * lets every `__dirname`-relative path resolve unchanged from dist.
 *
 * The model repository is not copied: the gpu-server finds it from its working
 * directory (GPU_SERVER_MODEL_REPOSITORY), and its weights are large.
 */
import { cpSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
const SOURCE_DIRS = ['lib', 'gateway', 'subgraphs', 'gpu-server', 'protocol'];
const ASSET = /\.(graphql|proto|yaml)$/;

function copyAssets(dir: string): void {
  for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory() && entry.name !== 'model_repository' && entry.name !== 'node_modules') copyAssets(relative);
    else if (entry.isFile() && ASSET.test(entry.name)) cpSync(path.join(ROOT, relative), path.join(DIST, relative));
  }
}

for (const dir of SOURCE_DIRS) copyAssets(dir);
cpSync(path.join(ROOT, 'supergraph.yaml'), path.join(DIST, 'supergraph.yaml'));
// The web app is built separately (npm run build:web); the gateway serves it when present.
const webBuild = path.join(ROOT, 'web', 'dist');
if (existsSync(webBuild)) cpSync(webBuild, path.join(DIST, 'web', 'dist'), { recursive: true });
process.stdout.write(`copied the run-time assets into ${path.relative(process.cwd(), DIST) || '.'}\n`);
