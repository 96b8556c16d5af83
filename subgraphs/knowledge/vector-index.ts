import { GraphQLError } from 'graphql';
import type Redis from 'ioredis';
import { codedError, ErrorCode } from '../../lib/errors';
import type { Logger } from '../../lib/log';
import type { FeedPosition, IndexedRecord, VectorStore } from './vector-store';
import { type SearchHit, UserVectors, type UserVectorsOptions } from './user-vectors';

/** A change this process has just made through VectorStore (publish → add, remove → delete). */
export interface LocalChange {
  op: 'add' | 'delete';
  userId: string;
  docId: string;
}

/** Users' vectors and which user each document belongs to: what a rebuild assembles and swaps in whole. */
class IndexState {
  readonly users = new Map<string, UserVectors>();
  readonly owners = new Map<string, string>();

  constructor(private readonly userOptions: UserVectorsOptions) {}

  /** Puts a published document in; a document without vectors just leaves (there is nothing to find). */
  insert(record: IndexedRecord, vectors: readonly Float32Array[]): void {
    this.delete(record.docId);
    if (vectors.length === 0) return;
    let user = this.users.get(record.userId);
    if (!user) {
      user = new UserVectors(vectors[0].length, this.userOptions);
      this.users.set(record.userId, user);
    }
    try {
      user.add(record.docId, record.tags, record.seq, vectors);
    } finally {
      if (user.documentCount === 0) this.users.delete(record.userId);
    }
    this.owners.set(record.docId, record.userId);
  }

  seqOf(docId: string): number | undefined {
    const owner = this.owners.get(docId);
    return owner === undefined ? undefined : this.users.get(owner)?.seqOf(docId);
  }

  delete(docId: string): void {
    const owner = this.owners.get(docId);
    if (owner === undefined) return;
    this.owners.delete(docId);
    const user = this.users.get(owner);
    user?.remove(docId);
    if (user && user.documentCount === 0) this.users.delete(owner);
  }
}

export interface VectorIndexOptions {
  /** Opens the connection the change follower blocks on (XREAD BLOCK needs one of its own). */
  connect: () => Redis;
  log: Logger;
  /** Exact search up to this many vectors per user, HNSW above. Default 2048. */
  exactThreshold?: number;
  /** How long one XREAD waits for changes. Default 5000 ms. */
  blockMs?: number;
  /** Pause before retrying after Redis failed the follower. Default 1000 ms. */
  retryMs?: number;
}

/**
 * Every user's chunk vectors, in this process, for search. `start` rebuilds it from Redis and then
 * follows the change stream on a connection of its own, so every replica sees every replica's
 * publishes and removals. It rebuilds again, rather than go on with a hole, when the next change's
 * number is not the last one plus one (the stream was trimmed past it) or when its connection was lost.
 * The process that makes a change also applies it at once (`applyLocal`); when the same change then
 * comes from the stream it is a no-op, since each document carries the number of the change that
 * published it.
 *
 * With the in-memory Redis (ioredis-mock, one process) there is no stream to follow: local changes are
 * all there is, and they are applied directly.
 */
export class VectorIndex {
  private state: IndexState;
  private readonly userOptions: UserVectorsOptions;
  private readonly blockMs: number;
  private readonly retryMs: number;
  /** Documents deleted here, with the `epoch` of their deletion: an add that began reading before it must not resurrect them. */
  private readonly tombstones = new Map<string, number>();
  private epoch = 0;
  /** Adds and rebuilds reading Redis; tombstones are dropped when there are none. */
  private inflight = 0;
  private cursor: FeedPosition = { seq: 0, streamId: '0-0' };
  private reader: Redis | null = null;
  private following: Promise<void> | null = null;
  private connectionLost = false;
  private stopped = false;
  private rebuildCount = 0;

  constructor(
    private readonly store: VectorStore,
    private readonly options: VectorIndexOptions,
  ) {
    const exactThreshold = options.exactThreshold ?? 2048;
    if (!Number.isInteger(exactThreshold) || exactThreshold < 0) throw new TypeError(`VectorIndex expects exactThreshold to be an integer ≥ 0, but got ${exactThreshold}`);
    this.userOptions = { exactThreshold, onError: (error) => options.log.error('building a vector graph failed; search stays exact', { error: String(error) }) };
    this.state = new IndexState(this.userOptions);
    this.blockMs = options.blockMs ?? 5000;
    this.retryMs = options.retryMs ?? 1000;
  }

  /** Rebuilds every user's index from Redis, then follows the change stream. Resolves when the rebuild is done. */
  async start(): Promise<void> {
    if (this.store.changeFeed) {
      const reader = this.options.connect();
      reader.on('close', () => {
        if (!this.stopped) this.connectionLost = true;
      });
      this.reader = reader;
    } else {
      this.options.log.info('vector index: no change stream on the in-memory Redis, so not following one; this process applies its own changes');
    }
    try {
      await this.rebuild();
    } catch (error) {
      this.stopped = true;
      this.reader?.disconnect();
      throw error;
    }
    if (this.reader) this.following = this.follow(this.reader);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.reader?.disconnect();
    await this.following;
  }

  /**
   * Applies a change this process has just made, so its own next search sees it. An add resolves once
   * the document is searchable here; a delete takes effect before this returns. Never rejects: a
   * failure is logged, and the change stream brings the change anyway.
   */
  applyLocal(change: LocalChange): Promise<void> {
    if (change.op === 'delete') {
      this.deleteDocument(change.docId, Number.POSITIVE_INFINITY);
      return Promise.resolve();
    }
    return this.addDocument(change.docId).catch((error: unknown) =>
      this.options.log.warn('could not index a document here; the change stream will bring it', { document: change.docId, error: String(error) }),
    );
  }

  /** Top-k chunks of the user's documents by cosine similarity, best first; `tags`: only documents carrying every one. */
  search(userId: string, query: Float32Array, k: number, tags?: readonly string[]): SearchHit[] {
    if (!Number.isInteger(k) || k < 1) throw codedError(ErrorCode.BadUserInput, `search expects "k" to be a positive integer, but got ${k}`, { field: 'k' });
    return this.state.users.get(userId)?.search(query, k, tags) ?? [];
  }

  /** Vectors held for one user, or for all users. */
  vectorCount(userId?: string): number {
    if (userId !== undefined) return this.state.users.get(userId)?.size ?? 0;
    let total = 0;
    for (const user of this.state.users.values()) total += user.size;
    return total;
  }

  stats(): { users: number; documents: number; vectors: number; rebuilds: number } {
    return { users: this.state.users.size, documents: this.state.owners.size, vectors: this.vectorCount(), rebuilds: this.rebuildCount };
  }

  private async follow(reader: Redis): Promise<void> {
    let rebuild = false;
    while (!this.stopped) {
      try {
        if (rebuild || this.connectionLost) {
          await this.rebuild();
          rebuild = false;
        }
        const entries = await this.store.readChanges(reader, this.cursor.streamId, this.blockMs);
        if (this.stopped || this.connectionLost) continue;
        for (const { streamId, change } of entries) {
          if (change.seq !== this.cursor.seq + 1) {
            this.options.log.warn('vector index missed changes (the stream was trimmed past it, or Redis lost data); rebuilding', {
              expected: this.cursor.seq + 1,
              got: change.seq,
            });
            rebuild = true;
            break;
          }
          if (change.op === 'delete') this.deleteDocument(change.docId, change.seq);
          else await this.addDocument(change.docId, change.seq);
          this.cursor = { seq: change.seq, streamId };
        }
      } catch (error) {
        if (this.stopped) return;
        this.options.log.warn('vector index follower failed; rebuilding once Redis answers', { error: String(error) });
        rebuild = true;
        await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      }
    }
  }

  /** Reads everything into a new state and swaps it in; searches use the old one until then. */
  private async rebuild(): Promise<void> {
    this.connectionLost = false;
    const startEpoch = this.epoch;
    const started = Date.now();
    this.inflight++;
    try {
      // The position first: a change after it is replayed by the follower, and replaying is harmless.
      const position = await this.store.position();
      const state = new IndexState(this.userOptions);
      for await (const page of this.store.publishedDocuments()) {
        const vectors = await this.store.loadMany(page.map((record) => record.docId));
        page.forEach((record, i) => {
          // HSCAN may return a document twice; its vectors are read after the record, so they are at least as new.
          if ((state.seqOf(record.docId) ?? 0) >= record.seq) return;
          this.insertLogged(state, record, vectors[i]);
        });
      }
      for (const user of state.users.values()) await user.indexed();
      for (const [docId, epoch] of this.tombstones) if (epoch > startEpoch) state.delete(docId);
      this.state = state;
      this.cursor = position;
      this.rebuildCount++;
      this.options.log.info('vector index rebuilt', { users: state.users.size, documents: state.owners.size, vectors: this.vectorCount(), ms: Date.now() - started });
    } finally {
      this.settled();
    }
  }

  /** Loads the published document and puts it in, unless this state already has that version (or newer), or it was deleted meanwhile. */
  private async addDocument(docId: string, changeSeq?: number): Promise<void> {
    if (changeSeq !== undefined && (this.state.seqOf(docId) ?? 0) >= changeSeq) return;
    const startEpoch = this.epoch;
    this.inflight++;
    try {
      const published = await this.store.loadPublished(docId);
      if (!published || (this.tombstones.get(docId) ?? -1) > startEpoch) return;
      if ((this.state.seqOf(docId) ?? 0) >= published.record.seq) return;
      this.insertLogged(this.state, published.record, published.vectors);
    } finally {
      this.settled();
    }
  }

  /** `seq`: the change deleting it; a document published again by a later change stays. */
  private deleteDocument(docId: string, seq: number): void {
    if ((this.state.seqOf(docId) ?? 0) > seq) return;
    this.tombstones.set(docId, ++this.epoch);
    this.state.delete(docId);
    this.dropTombstonesIfIdle();
  }

  private settled(): void {
    this.inflight--;
    this.dropTombstonesIfIdle();
  }

  /** With no add or rebuild reading Redis, no read from before a deletion is left to resurrect its document. */
  private dropTombstonesIfIdle(): void {
    if (this.inflight === 0) this.tombstones.clear();
  }

  /** A document whose vectors do not fit its user's index is left out, loudly, rather than stop the others. */
  private insertLogged(state: IndexState, record: IndexedRecord, vectors: readonly Float32Array[]): void {
    try {
      state.insert(record, vectors);
    } catch (error) {
      if (!(error instanceof GraphQLError)) throw error;
      this.options.log.error('document left out of the vector index', { document: record.docId, user: record.userId, error: error.message });
    }
  }
}
