/**
 * Issue 8, item 8: throughput with 1, 2 and 3 gpu-server processes behind
 * the inference router (GpuTier), on this machine, and what limits scaling.
 *
 * Three gpu-server processes serve the project's models (sluice-embed,
 * sluice-chat); this process plays the inference subgraph (router, DataLoader
 * batching with the service's 2 ms window) and drives closed-loop clients:
 * - embeddings: 32 concurrent clients, one text each (the DataLoader
 *   coalesces them into batches, each batch routed whole);
 * - streamed generation on sluice-chat: 16 concurrent streams of 64 tokens.
 * The router is given the first 1, 2 or 3 endpoints; rounds alternate the
 * three settings. CPU time of every process (from /proc) shows where the two
 * cores go.
 *
 *   npx tsx bench/gpu-router.ts [rounds, default 3]
 */
import { readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import { randomUUID } from 'node:crypto';
import { createLogger } from '../lib/log';
import { alternate, closedLoop, median, sampleTexts, type LoadResult } from '../gpu-server/testing/load-generator';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { PROJECT_REPOSITORY } from '../gpu-server/testing/temp-repository';
import { EmbeddingBatcher } from '../subgraphs/inference/embeddings/embedding-batcher';
import { generationRequest, type SamplingParameters } from '../subgraphs/inference/completions/generation-tensors';
import { GpuTier } from '../subgraphs/inference/gpu-tier/gpu-tier';
import { ModelCatalog, type ModelInfo } from '../subgraphs/inference/models/model-catalog';
import { repositoryOf, startGpuProcess, stopGpuProcess, type GpuProcess } from '../test/support/gpu-processes';
import { loadNote, recordResult } from './results';

const ROUNDS = Number(process.argv[2] ?? 3);
const EMBED_CLIENTS = 128;
const EMBED_REQUESTS = 6_000;
const STREAMS = 16;
const STREAM_REQUESTS = 96;
const MAX_TOKENS = 64;
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

const log = createLogger({ bench: 'gpu-router' });

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

interface Measured extends LoadResult {
  /** CPU seconds per process during the run: this one, then each gpu-server. */
  cpu: number[];
  /** Share of the requests each gpu-server took. */
  shares: number[];
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  await buildModels(PROJECT_REPOSITORY);
  const repository = repositoryOf(['sluice-embed', 'sluice-chat'], 'bench-router');
  const gpus: GpuProcess[] = [];
  const tiers: GpuTier[] = [];
  try {
    for (let i = 0; i < 3; i++) gpus.push(await startGpuProcess(repository));
    const pids = [process.pid, ...gpus.map((g) => g.child.pid!)];
    const texts = sampleTexts(EMBED_REQUESTS * ROUNDS * 3 + 1_000);
    let nextText = 0;

    const setups = await Promise.all(
      [1, 2, 3].map(async (n) => {
        const tier = new GpuTier({ endpoints: gpus.slice(0, n).map((g) => g.address), deadlineMs: 60_000, log, probeIntervalMs: 2_000 });
        tiers.push(tier);
        const catalog = new ModelCatalog(tier, 60_000);
        return { n, tier, embedder: new EmbeddingBatcher(tier, 2), embed: (await catalog.get('sluice-embed'))!, chat: (await catalog.get('sluice-chat'))! };
      }),
    );

    const measure = async (tier: GpuTier, run: () => Promise<LoadResult>): Promise<Measured> => {
      const cpuBefore = pids.map(cpuSeconds);
      const requestsBefore = gpus.map((g) => tier.endpoints.find((e) => e.address === g.address)?.requests ?? 0);
      const result = await run();
      const requests = gpus.map((g, i) => (tier.endpoints.find((e) => e.address === g.address)?.requests ?? 0) - requestsBefore[i]);
      const total = requests.reduce((a, b) => a + b, 0);
      return { ...result, cpu: pids.map((pid, i) => cpuSeconds(pid) - cpuBefore[i]), shares: requests.map((r) => r / total) };
    };
    const embedRun = (s: (typeof setups)[number]) => () => measure(s.tier, () => closedLoop(EMBED_CLIENTS, EMBED_REQUESTS, () => s.embedder.embed(s.embed, [texts[nextText++ % texts.length]])));
    const streamRun = (s: (typeof setups)[number]) => () => measure(s.tier, () => closedLoop(STREAMS, STREAM_REQUESTS, (i) => stream(s.tier, s.chat, i)));

    // Warm-up: JIT, channels, sessions of every process.
    for (const s of setups) {
      await closedLoop(EMBED_CLIENTS, 300, () => s.embedder.embed(s.embed, [texts[nextText++ % texts.length]]));
      await closedLoop(4, 8, (i) => stream(s.tier, s.chat, i));
    }
    const embeds = await alternate(ROUNDS, setups.map(embedRun));
    const streams = await alternate(ROUNDS, setups.map(streamRun));

    const rows = (runs: Measured[][], unit: (r: Measured) => number) =>
      runs.map((r, i) => {
        const figure = median(r.map(unit));
        const base = median(runs[0].map(unit));
        const cpu = (r: Measured) => r.cpu.reduce((a, b) => a + b, 0) / r.seconds;
        const last = r[r.length - 1];
        return `| ${i + 1} | ${figure.toFixed(0)} (${r.map((x) => unit(x).toFixed(0)).join(', ')}) | ${(figure / base).toFixed(2)}× | ${last.shares
          .slice(0, i + 1)
          .map((s) => `${(s * 100).toFixed(0)}%`)
          .join(' / ')} | ${median(r.map(cpu)).toFixed(2)} (router ${(last.cpu[0] / last.seconds).toFixed(2)}, servers ${last.cpu
          .slice(1, i + 2)
          .map((c) => (c / last.seconds).toFixed(2))
          .join(' + ')}) |`;
      });
    const header =
      '| gpu-servers | throughput (median; per round) | vs 1 | requests per server (last round) | cores busy: all processes (router; each server used) |\n| ---: | ---: | ---: | --- | --- |';
    const body = [
      `Three gpu-server processes (\`node --import tsx gpu-server/main.ts\`, sluice-embed and sluice-chat, one instance each) on this machine; this process is the router (GpuTier, least-outstanding) with the inference service's DataLoader batching (2 ms window). It is given the first 1, 2 or 3 endpoints; ${ROUNDS} alternating rounds (\`npx tsx bench/gpu-router.ts\`).`,
      '',
      `**Embeddings**, texts/s: ${EMBED_CLIENTS} closed-loop clients, one text per request, ${EMBED_REQUESTS} requests per round.`,
      '',
      header,
      ...rows(embeds, (r) => r.perSecond),
      '',
      `**Streamed generation** (sluice-chat), tokens/s: ${STREAMS} concurrent streams of ${MAX_TOKENS} tokens (seeded, temperature 0.8, ignore_eos), ${STREAM_REQUESTS} streams per round.`,
      '',
      header,
      ...rows(streams, (r) => r.perSecond * MAX_TOKENS),
      '',
      `What limits scaling here. The machine has ${os.cpus().length} cores and the four processes (router and three servers) share them; "cores busy" is the CPU time of all of them per second of wall time, so what is left of ${os.cpus().length} is either idle or taken by other programs (see the load average below). Generation is compute: one gpu-server runs sluice-chat on one model instance (one worker thread) plus its main thread, so a second server can add at most the other core's worth, and a third only competes for the same cores. Embeddings with this tiny model are not compute-bound (all processes together keep about one core busy): a 64-text batch costs less than its hops (the router's DataLoader, gRPC encoding, the server's decoding and batching), the router process alone takes a large share of that core, so more servers do not raise throughput — the spread between rounds is wider than the differences between settings. On a real cluster each endpoint brings its own GPU and the servers' share grows per endpoint; the router's share per request is what stays.`,
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('gpu-router', 'Issue 8: throughput with 1, 2 and 3 gpu-servers behind the router', body);
  } finally {
    for (const t of tiers) t.close();
    await Promise.all(gpus.map((g) => stopGpuProcess(g)));
    rmSync(repository, { recursive: true, force: true });
  }
}

/** Exactly MAX_TOKENS tokens per stream (ignore_eos, which the gpu-server and vLLM take), so tokens/s is streams/s × MAX_TOKENS. */
const SAMPLING = (seed: number) => ({ max_tokens: MAX_TOKENS, temperature: 0.8, top_p: 1, seed, ignore_eos: true }) as SamplingParameters;

/** One streamed generation to its end; rejects on a failure. */
function stream(tier: GpuTier, model: ModelInfo, i: number): Promise<void> {
  return new Promise((resolve, reject) => {
    tier.startStream(generationRequest(model, `bench-${randomUUID()}`, [`<|user|>\nWrite about topic ${i}\n<|assistant|>\n`], [SAMPLING(i)], true), {
      response: (_response, final) => {
        if (final) resolve();
      },
      error: reject,
    });
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
