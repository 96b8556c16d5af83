/**
 * Runs the closed-loop load of load-generator.ts in a child process, so the
 * clients do not share the server's event loop (as perf_analyzer runs beside
 * Triton). The child is this file, run with the parent's tsx loader.
 */
import { fork } from 'node:child_process';
import { closedLoop, embedRequest, sampleTexts, tritonClient, type LoadResult } from './load-generator';

export interface EmbedLoad {
  port: number;
  model: string;
  concurrency: number;
  requests: number;
  /** Texts per request. @default 1 */
  textsPerRequest?: number;
}

/** Sends `load` from a child process and resolves with its measurement. */
export function runEmbedLoadInChild(load: EmbedLoad): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, [JSON.stringify(load)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (result: LoadResult) => resolve(result));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`the load process exited with code ${code}`))));
  });
}

async function child(load: EmbedLoad): Promise<void> {
  const client = tritonClient(load.port);
  const per = load.textsPerRequest ?? 1;
  const texts = sampleTexts(load.requests * per);
  // Warm-up, not measured: the fresh process's JIT, the channel and the server's session.
  await closedLoop(load.concurrency, Math.min(load.requests, Math.ceil(1000 / per)), (i) => client.infer(embedRequest(load.model, texts.slice(i * per, (i + 1) * per))));
  const result = await closedLoop(load.concurrency, load.requests, (i) => client.infer(embedRequest(load.model, texts.slice(i * per, (i + 1) * per))));
  client.close();
  process.send!(result, () => process.exit(0));
}

if (require.main === module && process.send) void child(JSON.parse(process.argv[2]) as EmbedLoad);
