/**
 * Benchmark 9(b): throughput of a model with 2 instances vs 1 on this 2-core
 * machine, side by side in one run on one gpu-server.
 *
 * Two variants of sluice-embed, identical but for `instance_group { count }`
 * (each instance its own worker thread and ONNX Runtime session). Requests
 * carry 32 texts each and the variants have no dynamic batching, so every
 * request is one execution and the measure is how many executions run at
 * once; 8 closed-loop clients keep both instances busy. Measured over gRPC
 * (clients spread over child processes, default 2, so that one client
 * process is not the bound; the CPU each side used is reported) and in
 * process (`core.infer`, no network).
 * Rounds alternate; each figure is the median of the per-round ratios.
 *
 *   npx tsx bench/instances.ts [rounds, default 6] [requests per round, default 400] [client processes, default 2]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { createLogger } from '../lib/log';
import { alternate, closedLoop, median, sampleTexts, type LoadResult } from '../gpu-server/testing/load-generator';
import { describeBound, runEmbedLoadInChildren } from '../gpu-server/testing/load-process';
import { encodeBytesTensor } from '../protocol/triton/bytes-tensor';
import { makeEmbedRepository } from '../gpu-server/testing/temp-repository';
import { startGpuServer } from '../gpu-server/server';
import { loadNote, recordResult } from './results';

const CONCURRENCY = 8;
const TEXTS_PER_REQUEST = 32;
const ROUNDS = Number(process.argv[2] ?? 6);
const PER_ROUND = Number(process.argv[3] ?? 400);
const PROCESSES = Number(process.argv[4] ?? 2);
const TARGET = 1.7;
const ONE = 'embed-1-instance';
const TWO = 'embed-2-instances';

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const repository = await makeEmbedRepository([
    { name: ONE, dynamicBatching: undefined, instanceGroup: '{ count: 1 kind: KIND_CPU }' },
    { name: TWO, dynamicBatching: undefined, instanceGroup: '{ count: 2 kind: KIND_CPU }' },
  ]);
  const server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ bench: 'instances' }) });
  const texts = sampleTexts(PER_ROUND * TEXTS_PER_REQUEST);
  try {
    // Each child warms up (JIT, channel, sessions) before it measures.
    const overGrpc = (model: string) =>
      runEmbedLoadInChildren({ port: server.grpcPort, model, concurrency: CONCURRENCY, requests: PER_ROUND, textsPerRequest: TEXTS_PER_REQUEST, processes: PROCESSES });
    const inProcess = (model: string, total = PER_ROUND) =>
      closedLoop(CONCURRENCY, total, (i) =>
        server.core.infer({
          modelName: model,
          inputs: [{ name: 'text', datatype: 'BYTES', shape: [TEXTS_PER_REQUEST, 1], data: encodeBytesTensor(texts.slice(i * TEXTS_PER_REQUEST, (i + 1) * TEXTS_PER_REQUEST)) }],
        }),
      );
    await inProcess(ONE, 100);
    await inProcess(TWO, 100);
    const [grpcOne, grpcTwo, coreOne, coreTwo] = await alternate(ROUNDS, [() => overGrpc(ONE), () => overGrpc(TWO), () => inProcess(ONE), () => inProcess(TWO)]);
    const textsPerSecond = (runs: LoadResult[]) => (median(runs.map((r) => r.perSecond)) * TEXTS_PER_REQUEST).toFixed(0);
    const perRound = (runs: LoadResult[]) => runs.map((r) => (r.perSecond * TEXTS_PER_REQUEST).toFixed(0)).join(', ');
    const ratio = (a: LoadResult[], b: LoadResult[]) => median(b.map((r, i) => r.perSecond / a[i].perSecond));
    const verdict = (r: number) => `${r.toFixed(2)}× (${r >= TARGET ? 'meets' : 'misses'} the ≥ ${TARGET}× target)`;
    const busy = server.core
      .instanceStatistics()
      .map((s) => `${s.instance}: ${s.executions} executions, ${(s.busyNs / 1e9).toFixed(1)} s busy`)
      .join('; ');
    const load = loadNote(loadBefore);
    const body = [
      `sluice-embed, ${TEXTS_PER_REQUEST} texts (17 words) per request, no dynamic batching, ${CONCURRENCY} concurrent closed-loop clients; ${ROUNDS} alternating rounds of ${PER_ROUND} requests per variant and path (\`npx tsx bench/instances.ts\`).`,
      '',
      '| path | 1 instance, texts/s | 2 instances, texts/s | speed-up (median of per-round ratios) |',
      '| --- | ---: | ---: | ---: |',
      `| gRPC, clients in ${PROCESSES} child process${PROCESSES > 1 ? 'es' : ''} | ${textsPerSecond(grpcOne)} (${perRound(grpcOne)}) | ${textsPerSecond(grpcTwo)} (${perRound(grpcTwo)}) | **${verdict(ratio(grpcOne, grpcTwo))}** |`,
      `| in process, \`core.infer\` | ${textsPerSecond(coreOne)} (${perRound(coreOne)}) | ${textsPerSecond(coreTwo)} (${perRound(coreTwo)}) | **${verdict(ratio(coreOne, coreTwo))}** |`,
      '',
      `Where the CPU went over gRPC — 1 instance: ${describeBound(grpcOne, os.cpus().length)}; 2 instances: ${describeBound(grpcTwo, os.cpus().length)}.`,
      '',
      `Per instance: ${busy}. Each instance is its own worker thread with one ONNX Runtime thread, so two can only double throughput when two cores are free for them; on this 2-core machine the server's main thread (decoding and validating requests, forming batches, the hops to the workers) and, over gRPC, the client processes take much of the second core: the busy times show two instances each idle part of the run, waiting for work.`,
      '',
      load,
    ].join('\n');
    console.log(body);
    recordResult('instances', '9(b) Instance groups: 2 instances vs 1', body);
  } finally {
    await server.stop();
    fs.rmSync(repository, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
