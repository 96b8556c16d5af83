import type { GraphQLError } from 'graphql';
import { ErrorCode } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import { chunkDocument, type ChunkOptions } from './chunker';
import type { Document, DocumentStore } from './document-store';
import type { ModelChoice } from './model-choice';
import type { IngestionFeed, IngestionState } from './ingestion-feed';
import type { VectorIndex } from './vector-index';
import type { VectorStore } from './vector-store';
import { countTokens } from '../../lib/token-counter';

export interface IngestionOptions {
  chunking: ChunkOptions;
  /** Embedding calls in flight per document. */
  concurrency: number;
  /** Chunks per embedding call; 0 means the model's max batch size (1 is only for comparing, in bench/). */
  groupSize: number;
  /** How long an ingestion may go without progress before any replica declares it dead. */
  leaseMs: number;
}

/**
 * Background ingestion: chunk, then embed through the inference service in
 * groups of the embedding model's max batch size (so N chunks cost about
 * ⌈N / max_batch_size⌉ GPU calls), persist the vectors, then make the document
 * searchable. Progress goes to the document hash and the ingestion feed.
 *
 * Embedding calls carry the identity of the addDocument request, unchanged:
 * ingestion acts for the caller and with no more rights than theirs. That
 * identity is short-lived, so an ingestion outlasting it fails with a reason
 * that says so, rather than acting without one.
 */
export class Ingestion {
  private readonly running = new Map<string, AbortController>();

  constructor(
    private readonly deps: {
      store: DocumentStore;
      vectors: VectorStore;
      index: VectorIndex;
      feed: IngestionFeed;
      models: ModelChoice;
      log: Logger;
    },
    private readonly options: IngestionOptions,
  ) {}

  /** Starts ingesting in the background; the returned promise settles when it has ended (for tests and shutdown). */
  start(doc: Document, identityHeader: string): Promise<void> {
    const abort = new AbortController();
    this.running.set(doc.id, abort);
    return this.run(doc, identityHeader, abort.signal)
      .catch((error: unknown) => this.fail(doc, error))
      .finally(() => this.running.delete(doc.id));
  }

  /** Fails what is still running (a stopped service cannot finish it) and waits for each to record that. */
  async stop(): Promise<void> {
    const pending = [...this.running.values()];
    pending.forEach((abort) => abort.abort());
    while (this.running.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  /** Marks ingestions whose lease ran out (their replica died) as FAILED; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    let failed = 0;
    for (const docId of await this.deps.store.expiredIngestions(now)) {
      if (this.running.has(docId)) continue;
      const reason = 'ingestion was interrupted (the knowledge service doing it stopped); add the document again';
      const [doc] = await this.deps.store.getMany([docId]);
      if (await this.deps.store.advance(docId, doc?.embeddedChunks ?? 0, 'FAILED', reason)) {
        failed += 1;
        if (doc) await this.deps.vectors.remove(doc.ownerId, docId);
        await this.deps.feed.publish(docId, { status: 'FAILED', embeddedChunks: doc?.embeddedChunks ?? 0, totalChunks: doc?.chunkCount ?? 0, reason });
      }
    }
    return failed;
  }

  private async run(doc: Document, identityHeader: string, signal: AbortSignal): Promise<void> {
    const { store, vectors, index, feed, models } = this.deps;
    const chunks = chunkDocument(doc.content, this.options.chunking);
    if (!(await store.saveChunks(doc.id, chunks, countTokens(doc.content), Date.now() + this.options.leaseMs))) return;
    const total = chunks.length;
    await feed.publish(doc.id, { status: 'INGESTING', embeddedChunks: 0, totalChunks: total, reason: null });

    const model = await models.current(identityHeader);
    const groupSize = this.options.groupSize || Math.max(1, model.maxBatchSize);
    let next = 0;
    let embedded = 0;
    let alive = true;
    const worker = async () => {
      while (alive && next < total) {
        if (signal.aborted) throw new Error('the knowledge service stopped before ingestion finished; add the document again');
        const first = next;
        const group = chunks.slice(first, first + groupSize);
        next += group.length;
        const vectorsOfGroup = await models.embed(
          identityHeader,
          model,
          group.map((chunk) => chunk.text),
        );
        await vectors.putVectors(doc.id, first, vectorsOfGroup);
        embedded += group.length;
        const state: IngestionState = { status: 'INGESTING', embeddedChunks: embedded, totalChunks: total, reason: null };
        // A false here means the document was deleted (or declared dead) meanwhile: stop writing.
        alive = await store.advance(doc.id, embedded, 'INGESTING', '', Date.now() + this.options.leaseMs);
        if (alive) await feed.publish(doc.id, state);
      }
    };
    // One worker failing stops the others before the failure is recorded: nothing is written after the cleanup.
    const workers = await Promise.allSettled(
      Array.from({ length: Math.min(this.options.concurrency, Math.ceil(total / groupSize)) }, () =>
        worker().catch((error: unknown) => {
          alive = false;
          throw error;
        }),
      ),
    );
    const failure = workers.find((w): w is PromiseRejectedResult => w.status === 'rejected');
    if (failure) throw failure.reason;
    if (!alive) return vectors.remove(doc.ownerId, doc.id);

    await vectors.publish({ userId: doc.ownerId, docId: doc.id, tags: doc.tags }, total);
    await index.applyLocal({ op: 'add', userId: doc.ownerId, docId: doc.id });
    if (!(await store.advance(doc.id, total, 'READY'))) {
      // Deleted between the last batch and now: take back what was just published.
      await vectors.remove(doc.ownerId, doc.id);
      await index.applyLocal({ op: 'delete', userId: doc.ownerId, docId: doc.id });
      return;
    }
    await feed.publish(doc.id, { status: 'READY', embeddedChunks: total, totalChunks: total, reason: null });
    this.deps.log.info('document ingested', { document: doc.id, chunks: total, model: model.id });
  }

  private async fail(doc: Document, error: unknown): Promise<void> {
    const reason = failureReason(error);
    this.deps.log.warn('ingestion failed', { document: doc.id, reason });
    try {
      const [current] = await this.deps.store.getMany([doc.id]);
      if (!current || !(await this.deps.store.advance(doc.id, current.embeddedChunks, 'FAILED', reason))) return;
      await this.deps.vectors.remove(doc.ownerId, doc.id);
      await this.deps.feed.publish(doc.id, { status: 'FAILED', embeddedChunks: current.embeddedChunks, totalChunks: current.chunkCount, reason });
    } catch (recordError) {
      // Redis is away: the lease runs out and a sweeper records the failure later.
      this.deps.log.error('could not record a failed ingestion', { document: doc.id, error: String(recordError) });
    }
  }
}

function failureReason(error: unknown): string {
  const code = (error as GraphQLError | undefined)?.extensions?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === ErrorCode.Unauthenticated) {
    return `the inference service refused the caller's identity (${message}); the signed identity lives briefly, so a document this large may take longer to embed than it lasts — split it, or add it again`;
  }
  return code ? `${code}: ${message}` : message;
}
