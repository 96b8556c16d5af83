/**
 * Knowledge search at 100k vectors for one user: the HNSW graph (usearch, cosine) against exact brute
 * force over the same vectors, side by side in one run, with recall@k of the graph against the exact
 * answer and the memory the index takes.
 *
 * Vectors are seeded pseudo-random unit vectors around 1000 random centroids (clusters, as embeddings
 * of related text are), D = 128, in 1000 documents of 100 chunks; queries are fresh points around
 * random centroids. Both indexes are `UserVectors` (the per-user index `VectorIndex.search` looks up
 * and calls) filled directly, without Redis; the exact one has no threshold, so it never builds a graph.
 * Queries alternate between the two.
 *
 *   npx tsx bench/vector-search.ts [vectors, default 100000] [queries, default 500]
 */
import * as os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type SearchHit, UserVectors } from '../subgraphs/knowledge/user-vectors';
import { loadNote, percentile, recordResult } from './results';
import { prng as random } from '../lib/prng';

const VECTORS = Number(process.argv[2] ?? 100_000);
const QUERIES = Number(process.argv[3] ?? 500);
const DIMENSIONS = 128;
const CENTROIDS = 1000;
const CHUNKS_PER_DOCUMENT = 100;
const K = 5;
const WARM_UP = 50;
/** Stored vectors searched for themselves. */
const SELF_SAMPLE = 5000;
const TARGET_P99_MS = 20;
/** Length of the noise added to a (unit) centroid before normalizing: neighbours within a cluster sit at cosine ≈ 0.75. */
const NOISE = 0.6;

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

function normalize(vector: Float32Array): Float32Array {
  let norm = 0;
  for (const value of vector) norm += value * value;
  norm = Math.sqrt(norm);
  for (let j = 0; j < vector.length; j++) vector[j] /= norm;
  return vector;
}

function around(centroid: Float32Array, next: () => number): Float32Array {
  const vector = new Float32Array(DIMENSIONS);
  const scale = NOISE / Math.sqrt(DIMENSIONS);
  for (let j = 0; j < DIMENSIONS; j++) vector[j] = centroid[j] + gaussian(next) * scale;
  return normalize(vector);
}

/** A full collection (with --expose-gc set at run time, as `npm run bench` starts scripts without it). */
const collect = (() => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
  };
})();

function memory(): { rss: number; js: number } {
  collect();
  const usage = process.memoryUsage();
  // `external` already includes `arrayBuffers` (the Float32Arrays); usearch's graph is native memory, seen only in rss.
  return { rss: usage.rss, js: usage.heapUsed + usage.external };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const ms = (value: number) => `${value.toFixed(2)} ms`;

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const next = random(42);
  const centroids = Array.from({ length: CENTROIDS }, () => normalize(Float32Array.from({ length: DIMENSIONS }, () => gaussian(next))));
  const documents = Array.from({ length: Math.ceil(VECTORS / CHUNKS_PER_DOCUMENT) }, (_, d) =>
    Array.from({ length: Math.min(CHUNKS_PER_DOCUMENT, VECTORS - d * CHUNKS_PER_DOCUMENT) }, () => around(centroids[Math.floor(next() * CENTROIDS)], next)),
  );
  const queries = Array.from({ length: WARM_UP + QUERIES }, () => around(centroids[Math.floor(next() * CENTROIDS)], next));

  const before = memory();
  const exact = new UserVectors(DIMENSIONS, { exactThreshold: Number.POSITIVE_INFINITY });
  documents.forEach((vectors, d) => exact.add(`doc-${d}`, [], d + 1, vectors));
  const afterExact = memory();

  const buildStarted = performance.now();
  const graph = new UserVectors(DIMENSIONS, { exactThreshold: 2048 });
  documents.forEach((vectors, d) => graph.add(`doc-${d}`, [], d + 1, vectors));
  // How long the build, once the vectors are in, keeps the event loop (and so every request) waiting at a time.
  const stalls = monitorEventLoopDelay({ resolution: 1 });
  stalls.enable();
  await graph.indexed();
  stalls.disable();
  const buildSeconds = (performance.now() - buildStarted) / 1000;
  const longestStallMs = stalls.max / 1e6;
  const afterGraph = memory();
  if (graph.mode !== 'hnsw' || exact.mode !== 'exact') throw new Error(`expected one graph and one exact index, got ${graph.mode} and ${exact.mode}`);

  const exactMs: number[] = [];
  const graphMs: number[] = [];
  let overlap = 0;
  const key = (hit: SearchHit) => `${hit.docId}/${hit.chunk}`;
  queries.forEach((query, i) => {
    let started = performance.now();
    const truth = exact.search(query, K);
    const exactTime = performance.now() - started;
    started = performance.now();
    const found = graph.search(query, K);
    const graphTime = performance.now() - started;
    if (i < WARM_UP) return;
    exactMs.push(exactTime);
    graphMs.push(graphTime);
    const truthKeys = new Set(truth.map(key));
    overlap += found.filter((hit) => truthKeys.has(key(hit))).length;
  });
  const recall = overlap / (QUERIES * K);
  // A vector the graph cannot reach is lost to every query: each sampled stored vector must find itself.
  const sampled = Math.min(SELF_SAMPLE, VECTORS);
  let foundThemselves = 0;
  for (let i = 0; i < sampled; i++) {
    const d = Math.floor(next() * documents.length);
    const chunk = Math.floor(next() * documents[d].length);
    const [hit] = graph.search(documents[d][chunk], 1);
    if (hit?.docId === `doc-${d}` && hit.chunk === chunk) foundThemselves++;
  }
  const [graphP50, graphP99, exactP50, exactP99] = [percentile(graphMs, 50), percentile(graphMs, 99), percentile(exactMs, 50), percentile(exactMs, 99)];

  const body = [
    `One user, ${VECTORS.toLocaleString('en')} vectors of D = ${DIMENSIONS} (seeded, around ${CENTROIDS} random centroids), in documents of ${CHUNKS_PER_DOCUMENT} chunks; ${QUERIES} queries of k = ${K} after ${WARM_UP} warm-up ones, alternating between the two indexes (\`npx tsx bench/vector-search.ts\`). Both are the per-user index \`VectorIndex.search\` calls (\`UserVectors\`), filled directly without Redis.`,
    '',
    '| search (k = 5) | p50 | p99 |',
    '| --- | ---: | ---: |',
    `| HNSW graph (usearch, cosine, M = 16, ef = 64) | ${ms(graphP50)} | **${ms(graphP99)}** (${graphP99 < TARGET_P99_MS ? 'meets' : 'misses'} the < ${TARGET_P99_MS} ms target) |`,
    `| exact brute force (JS dot products over the Float32Array blocks) | ${ms(exactP50)} | ${ms(exactP99)} |`,
    `| exact ÷ HNSW | ${(exactP50 / graphP50).toFixed(0)}× | ${(exactP99 / graphP99).toFixed(0)}× |`,
    '',
    `Recall@${K} of the graph against the exact answers: **${recall.toFixed(3)}**. Stored vectors that are their own nearest neighbour in the graph: ${foundThemselves.toLocaleString('en')} of ${sampled.toLocaleString('en')} sampled.`,
    '',
    `Building the graph: ${buildSeconds.toFixed(1)} s for ${VECTORS.toLocaleString('en')} vectors (usearch inserting with one thread, in slices of about 15 ms between event-loop turns, while search stays exact); the longest the event loop waited meanwhile: ${ms(longestStallMs)}.`,
    '',
    `Memory per ${VECTORS.toLocaleString('en')} vectors (after a full GC; rss = resident set, js = heapUsed + external, which includes ArrayBuffers): exact index ${mib(afterExact.js - before.js)} js / ${mib(afterExact.rss - before.rss)} rss (the vectors are ${mib(VECTORS * DIMENSIONS * 4)} of float32); with the graph ${mib(afterGraph.js - afterExact.js)} js / **${mib(afterGraph.rss - afterExact.rss)} rss** (the vectors once more in the JS array, plus usearch's own copy and its links, which only rss sees).`,
    '',
    loadNote(loadBefore),
  ].join('\n');
  console.log(body);
  recordResult('vector-search', 'Knowledge vector search: HNSW vs exact at 100k vectors', body);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
