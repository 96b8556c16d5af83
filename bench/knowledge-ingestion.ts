/**
 * Issue 6 (a): ingestion throughput, chunks embedded per second from
 * addDocument to READY, with batched embedding calls (each call carries the
 * embedding model's max batch size of chunks) vs one embed call per chunk —
 * side by side in one run, each on its own stack, the same document and the
 * same number of calls in flight (KNOWLEDGE_EMBED_CONCURRENCY=2). The
 * one-per-chunk stack also turns the inference DataLoader window off, so each
 * call really is one GPU execution.
 *
 *   npx tsx bench/knowledge-ingestion.ts
 */
import * as os from 'node:os';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { bearer, gql } from '../test/support/graphql';
import { loadNote, recordResult } from './results';
import { benchStack } from './stack';

const DOCUMENTS = 3;

/** A Markdown document of about `sections` × 12 paragraphs (≈ 2 chunks per section at 160 tokens). */
function document(seed: number, sections = 120): string {
  const parts = [`# Manual ${seed}`];
  for (let s = 0; s < sections; s++) {
    parts.push(`## Procedure ${s}`);
    for (let p = 0; p < 12; p++) parts.push(`Step ${s}.${p}: calibrate valve ${seed * 97 + s * 31 + p} to pressure ${p * 7 + s}, then record reading ${s}-${p} in log ${seed}.`);
  }
  return parts.join('\n\n');
}

async function measure(label: string, env: Record<string, string>) {
  const { stack, token } = await benchStack({ KNOWLEDGE_EMBED_CONCURRENCY: '2', ...env });
  try {
    const ingest = async (seed: number) => {
      const added = await gql(stack.gatewayUrl, 'mutation($t: String!, $c: String!) { addDocument(title: $t, content: $c) { id } }', { t: `Manual ${seed}`, c: document(seed) }, bearer(token));
      if (!added.data) throw new Error(`${label}: ${JSON.stringify(added.errors)}`);
      const id = added.data.addDocument.id as string;
      for (;;) {
        const res = await gql(stack.gatewayUrl, 'query($d: ID!) { document(id: $d) { status chunkCount failureReason } }', { d: id }, bearer(token));
        const doc = res.data!.document;
        if (doc.status === 'READY') return doc.chunkCount as number;
        if (doc.status === 'FAILED') throw new Error(`${label}: ingestion failed: ${doc.failureReason}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await ingest(0); // warm-up: sessions, connections, tokenizer
    const loadAtStart = os.loadavg()[0];
    const started = process.hrtime.bigint();
    let chunks = 0;
    for (let i = 1; i <= DOCUMENTS; i++) chunks += await ingest(i);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const result = { label, chunks, seconds, perSecond: chunks / seconds, load: loadNote(loadAtStart) };
    process.stdout.write(`${label}: ${chunks} chunks in ${seconds.toFixed(2)} s = ${result.perSecond.toFixed(0)} chunks/s\n`);
    return result;
  } finally {
    await stack.stop();
  }
}

async function main() {
  await buildModels('gpu-server/model_repository');
  const batched = await measure('batched (max_batch_size per call)', {});
  const single = await measure('one embed call per chunk', { KNOWLEDGE_EMBED_GROUP_SIZE: '1', INFERENCE_BATCH_WINDOW_MS: '0' });
  const ratio = batched.perSecond / single.perSecond;
  process.stdout.write(`ratio: ${ratio.toFixed(2)}× (target ≥ 4×)\n`);
  recordResult(
    'knowledge-ingestion',
    'Issue 6 (a): ingestion, batched embeddings vs one embed call per chunk',
    [
      `Command: \`npx tsx bench/knowledge-ingestion.ts\`. ${DOCUMENTS} Markdown documents of ~${batched.chunks / DOCUMENTS} chunks each, one after another, timed from \`addDocument\` to READY through the gateway; 2 embedding calls in flight per document in both runs.`,
      '',
      '| configuration | chunks | seconds | chunks/s |',
      '|---|---|---|---|',
      ...[batched, single].map((r) => `| ${r.label} | ${r.chunks} | ${r.seconds.toFixed(2)} | ${r.perSecond.toFixed(0)} |`),
      '',
      `**Batched / one per chunk: ${ratio.toFixed(2)}×** (target ≥ 4×: ${ratio >= 4 ? 'met' : 'missed'}). ${batched.load}`,
    ].join('\n'),
  );
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
