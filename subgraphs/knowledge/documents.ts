import { codedError, ErrorCode } from '../../lib/errors';
import type { Identity } from '../../lib/identity';
import { interruptible } from '../../lib/interruptible';
import type { Chunk } from './chunker';
import type { Document, DocumentStore } from './document-store';
import { isFinal, type IngestionFeed, type IngestionState } from './ingestion-feed';
import type { Ingestion } from './ingestion';
import type { VectorIndex } from './vector-index';
import type { VectorStore } from './vector-store';

export interface DocumentLimits {
  maxTitleChars: number;
  maxContentBytes: number;
  maxPage: number;
  maxTags: number;
  maxTagChars: number;
  /** How long a new document's ingestion may take to show progress before it is declared dead. */
  ingestionLeaseMs: number;
}

export interface IngestionEvent extends IngestionState {
  document: Document;
}

/** The knowledge base's rules (who may do what, what is valid) over the document store. */
export class Documents {
  constructor(
    private readonly deps: { store: DocumentStore; vectors: VectorStore; index: VectorIndex; ingestion: Ingestion; feed: IngestionFeed },
    private readonly limits: DocumentLimits,
  ) {}

  /** Stores the document and starts its ingestion, which goes on after this returns. */
  async add(identity: Identity, identityHeader: string, title: string, content: string, tags: readonly string[]): Promise<Document> {
    const owner = requireUser(identity, 'addDocument');
    const cleanTitle = title.trim();
    if (cleanTitle.length === 0 || cleanTitle.length > this.limits.maxTitleChars) {
      throw codedError(ErrorCode.BadUserInput, `addDocument expects "title" to be 1 to ${this.limits.maxTitleChars} characters, but got ${cleanTitle.length}`, { field: 'title' });
    }
    const size = Buffer.byteLength(content);
    if (content.trim().length === 0 || size > this.limits.maxContentBytes) {
      throw codedError(ErrorCode.BadUserInput, `addDocument expects "content" to be non-empty and at most ${this.limits.maxContentBytes} bytes, but got ${size} bytes`, {
        field: 'content',
        limit: this.limits.maxContentBytes,
        got: size,
      });
    }
    const doc = await this.deps.store.add(owner, cleanTitle, content, this.checkTags(tags), Date.now() + this.limits.ingestionLeaseMs);
    void this.deps.ingestion.start(doc, identityHeader);
    return doc;
  }

  /** Removes the document, its chunks and its vectors; NOT_FOUND when it is not the caller's. */
  async delete(identity: Identity, id: string): Promise<string> {
    const owner = requireUser(identity, 'deleteDocument');
    if (!(await this.deps.store.get(owner, id))) throw notFound(id);
    // Vectors first: if a step fails, the document is still there and deleting it again finishes the job.
    await this.deps.vectors.remove(owner, id);
    await this.deps.index.applyLocal({ op: 'delete', userId: owner, docId: id });
    if (!(await this.deps.store.delete(owner, id))) throw notFound(id);
    // Anyone following its ingestion hears that it ended, rather than waiting for progress that cannot come.
    await this.deps.feed.publish(id, { status: 'FAILED', embeddedChunks: 0, totalChunks: 0, reason: 'the document was deleted' });
    return id;
  }

  list(identity: Identity, ownerId: string, first: number, after?: string | null): Promise<Document[]> {
    const caller = requireUser(identity, 'documents');
    if (caller !== ownerId) throw codedError(ErrorCode.NotFound, `no documents for user ${JSON.stringify(ownerId)}`);
    this.checkPage('documents', first);
    return this.deps.store.list(caller, first, after ?? undefined);
  }

  get(identity: Identity, id: string): Promise<Document | null> {
    return identity.sub ? this.deps.store.get(identity.sub, id) : Promise.resolve(null);
  }

  /** The document's chunks from index `after + 1`; the document was already checked to be the caller's. */
  chunks(doc: Document, first: number, after?: number | null): Promise<(Chunk & { document: Document })[]> {
    this.checkPage('chunks', first);
    return this.deps.store.chunks(doc.id, (after ?? -1) + 1, first).then((chunks) => chunks.map((chunk) => ({ ...chunk, document: doc })));
  }

  /**
   * The ingestion's state now, then each change until READY or FAILED. The
   * feed is listened to before the state is read, so no change between the
   * two is missed; a message older than what was already sent is skipped.
   * Not itself a generator: a generator's return() would wait for the next
   * change, and an unsubscribe must end the stream at once.
   */
  async ingestion(identity: Identity, documentId: string): Promise<AsyncGenerator<IngestionEvent>> {
    const owner = requireUser(identity, 'ingestion');
    const store = this.deps.store;
    if (!(await store.get(owner, documentId))) throw notFound(documentId);
    const queue: IngestionState[] = [];
    let wake = () => {};
    const stopListening = await this.deps.feed.listen(documentId, (state) => {
      queue.push(state);
      wake();
    });
    const stopped = new AbortController();
    const stoppedOrWoken = () =>
      new Promise<void>((resolve) => {
        wake = resolve;
        if (stopped.signal.aborted) resolve();
      });
    async function* events(): AsyncGenerator<IngestionEvent> {
      const doc = await store.get(owner, documentId);
      if (!doc) throw notFound(documentId);
      let last: IngestionState = { status: doc.status, embeddedChunks: doc.embeddedChunks, totalChunks: doc.chunkCount, reason: doc.failureReason };
      yield { ...last, document: doc };
      while (!isFinal(last)) {
        if (queue.length === 0) await stoppedOrWoken();
        if (stopped.signal.aborted) return;
        const state = queue.shift();
        if (!state || (!isFinal(state) && state.embeddedChunks <= last.embeddedChunks && state.totalChunks === last.totalChunks)) continue;
        last = state;
        yield { ...state, document: (await store.get(owner, documentId)) ?? doc };
      }
    }
    return interruptible(events(), {
      interrupt: () => {
        stopped.abort();
        wake();
      },
      end: () => void stopListening(),
    });
  }

  private checkTags(tags: readonly string[]): string[] {
    const { maxTags, maxTagChars } = this.limits;
    if (tags.length > maxTags) throw codedError(ErrorCode.BadUserInput, `addDocument expects at most ${maxTags} tags, but got ${tags.length}`, { field: 'tags' });
    const clean = tags.map((tag) => tag.trim());
    const bad = clean.findIndex((tag) => tag.length === 0 || tag.length > maxTagChars);
    if (bad >= 0) throw codedError(ErrorCode.BadUserInput, `addDocument expects each tag to be 1 to ${maxTagChars} characters, but tags[${bad}] has ${clean[bad].length}`, { field: `tags[${bad}]` });
    return [...new Set(clean)];
  }

  private checkPage(field: string, first: number): void {
    if (!Number.isInteger(first) || first < 1 || first > this.limits.maxPage) {
      throw codedError(ErrorCode.BadUserInput, `${field} expects "first" between 1 and ${this.limits.maxPage}, but got ${first}`, { field: 'first' });
    }
  }
}

export function requireUser(identity: Identity, field: string): string {
  if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, `${field} requires a signed-in user: send "Authorization: Bearer <token>"`);
  return identity.sub;
}

function notFound(id: string) {
  return codedError(ErrorCode.NotFound, `no document with id ${JSON.stringify(id)}`);
}
