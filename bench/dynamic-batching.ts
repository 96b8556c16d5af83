/**
 * Benchmark 9(a): embedder throughput at concurrency 64, with dynamic
 * batching vs without, side by side in one run on one gpu-server.
 *
 * Two variants of sluice-embed in a temporary repository, identical but for
 * `dynamic_batching` (one KIND_CPU instance each); 64 closed-loop clients
 * each send one-text requests. Without dynamic batching every request is its
 * own execution (as in Triton); with it, the requests that queue while an
 * execution runs are combined into the next one. Measured two ways:
 * - over gRPC, the clients in child processes (as perf_analyzer runs beside
 *   Triton), so they do not share the server's event loop; the 64 clients
 *   are spread over several processes (default 2) so that one client
 *   process's event loop is not the bound, and the CPU each side used is
 *   reported to say what the bound was;
 * - in process, through `core.infer`: the same validation, batcher and worker
 *   thread without the network, which shows what the batcher does for the
 *   model when the protocol is not the bottleneck.
 * The variants alternate for several rounds; each figure is the median of
 * the per-round ratios (the machine may be shared).
 *
 *   npx tsx bench/dynamic-batching.ts [rounds, default 6] [requests per round, default 3000] [client processes, default 2]
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

const CONCURRENCY = 64;
const ROUNDS = Number(process.argv[2] ?? 6);
const PER_ROUND = Number(process.argv[3] ?? 3000);
const PROCESSES = Number(process.argv[4] ?? 2);
const TARGET = 4;
const BATCHED = 'embed-batched';
const UNBATCHED = 'embed-unbatched';

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const repository = await makeEmbedRepository([
    { name: BATCHED, dynamicBatching: '' },
    { name: UNBATCHED, dynamicBatching: undefined },
  ]);
  const server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ bench: 'dynamic-batching' }) });
  const texts = sampleTexts(PER_ROUND);
  try {
    // Each child warms up (JIT, channel, session) before it measures.
    const overGrpc = (model: string) => runEmbedLoadInChildren({ port: server.grpcPort, model, concurrency: CONCURRENCY, requests: PER_ROUND, processes: PROCESSES });
    const inProcess = (model: string, total = PER_ROUND) =>
      closedLoop(CONCURRENCY, total, (i) => server.core.infer({ modelName: model, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], data: encodeBytesTensor([texts[i % texts.length]]) }] }));
    await inProcess(UNBATCHED, 1000);
    await inProcess(BATCHED, 1000);
    const before = server.core.statistics(BATCHED)[0];
    const [grpcWithout, grpcWith, coreWithout, coreWith] = await alternate(ROUNDS, [() => overGrpc(UNBATCHED), () => overGrpc(BATCHED), () => inProcess(UNBATCHED), () => inProcess(BATCHED)]);
    const after = server.core.statistics(BATCHED)[0];
    const meanBatch = (after.inference_count - before.inference_count) / (after.execution_count - before.execution_count);
    const rate = (runs: LoadResult[]) => median(runs.map((r) => r.perSecond)).toFixed(0);
    const perRound = (runs: LoadResult[]) => runs.map((r) => r.perSecond.toFixed(0)).join(', ');
    const ratio = (a: LoadResult[], b: LoadResult[]) => median(b.map((r, i) => r.perSecond / a[i].perSecond));
    const grpcRatio = ratio(grpcWithout, grpcWith);
    const coreRatio = ratio(coreWithout, coreWith);
    const verdict = (r: number) => `${r.toFixed(2)}× (${r >= TARGET ? 'meets' : 'misses'} the ≥ ${TARGET}× target)`;
    const load = loadNote(loadBefore);
    const body = [
      `sluice-embed, one 17-word text per request, ${CONCURRENCY} concurrent closed-loop clients, one instance; ${ROUNDS} alternating rounds of ${PER_ROUND} requests per variant and path (\`npx tsx bench/dynamic-batching.ts\`).`,
      '',
      '| path | no dynamic batching, req/s | dynamic_batching { } (delay 0), req/s | speed-up (median of per-round ratios) |',
      '| --- | ---: | ---: | ---: |',
      `| gRPC, clients in ${PROCESSES} child process${PROCESSES > 1 ? 'es' : ''} | ${rate(grpcWithout)} (${perRound(grpcWithout)}) | ${rate(grpcWith)} (${perRound(grpcWith)}) | **${verdict(grpcRatio)}** |`,
      `| in process, \`core.infer\` | ${rate(coreWithout)} (${perRound(coreWithout)}) | ${rate(coreWith)} (${perRound(coreWith)}) | **${verdict(coreRatio)}** |`,
      '',
      `Mean batch formed with dynamic batching: ${meanBatch.toFixed(1)} requests. Where the CPU went over gRPC — without dynamic batching: ${describeBound(grpcWithout, os.cpus().length)}; with it: ${describeBound(grpcWith, os.cpus().length)}. A grpc-js call costs a few hundred µs of CPU on each side (see 9(d)), about what one unbatched execution costs (tokenize, worker-thread hop, session.run), so on ${os.cpus().length} cores shared by clients and server, batching the model's work cannot multiply end-to-end throughput by much; in process, without the protocol, the batcher's own effect shows.`,
      '',
      load,
    ].join('\n');
    console.log(body);
    recordResult('dynamic-batching', '9(a) Dynamic batching: embedder throughput at concurrency 64', body);
  } finally {
    await server.stop();
    fs.rmSync(repository, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
