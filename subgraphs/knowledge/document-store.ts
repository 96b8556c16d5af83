import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { Chunk } from './chunker';

export type DocumentStatus = 'INGESTING' | 'READY' | 'FAILED';

export interface Document {
  id: string;
  ownerId: string;
  title: string;
  content: string;
  tags: string[];
  sizeBytes: number;
  createdAt: Date;
  status: DocumentStatus;
  failureReason: string | null;
  tokenCount: number;
  chunkCount: number;
  /** Chunks embedded so far (equals chunkCount once READY). */
  embeddedChunks: number;
}

/**
 * Records the chunks of a document still being ingested: refuses (returns 0)
 * when the document was deleted meanwhile, so a late ingestion writes nothing.
 */
const SAVE_CHUNKS = `
if redis.call('HGET', KEYS[1], 'status') ~= 'INGESTING' then return 0 end
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'tokenCount', ARGV[1], 'chunkCount', ARGV[2])
return 1
`;

/** Moves a document still INGESTING forward, or ends it (READY / FAILED); 0 when it was deleted or already ended. */
const ADVANCE = `
if redis.call('HGET', KEYS[1], 'status') ~= 'INGESTING' then return 0 end
redis.call('HSET', KEYS[1], 'embeddedChunks', ARGV[1], 'status', ARGV[2], 'failureReason', ARGV[3])
return 1
`;

/** Removes the document and its chunks; 0 when it was not the owner's. */
const DELETE = `
if redis.call('HGET', KEYS[1], 'ownerId') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
`;

/**
 * Documents in Redis under `kb:`: a hash per document, a hash of its chunks
 * (index → JSON), and per owner a sorted set of document ids by creation time
 * (the index `documents` pages through). Vectors live apart, in VectorStore.
 * Documents being ingested hold a lease in `kb:ingesting` (id → deadline),
 * renewed at every step, so a replica that dies mid-way is noticed.
 *
 * A document and its chunks share the hash tag `{<id>}`; the owner's index
 * and the leases are in other Redis Cluster slots, so they are written in
 * steps of their own, ordered so that a crash between leaves only entries
 * readers skip: an add takes the lease, then the owner's index entry, then
 * the document (an index entry or lease without a document is ignored, and
 * the lease sweep drops it); the lease is renewed or dropped after the
 * document's step; a deletion removes the document, then its entries.
 */
export class DocumentStore {
  constructor(private readonly redis: Redis) {}

  async add(ownerId: string, title: string, content: string, tags: string[], leaseUntil: number): Promise<Document> {
    const doc: Document = {
      id: randomUUID(),
      ownerId,
      title,
      content,
      tags,
      sizeBytes: Buffer.byteLength(content),
      createdAt: new Date(),
      status: 'INGESTING',
      failureReason: null,
      tokenCount: 0,
      chunkCount: 0,
      embeddedChunks: 0,
    };
    await this.redis.zadd(INGESTING, leaseUntil, doc.id);
    await this.redis.zadd(ownerKey(ownerId), doc.createdAt.getTime(), doc.id);
    await this.redis.hset(docKey(doc.id), {
      id: doc.id,
      ownerId,
      title,
      content,
      sizeBytes: doc.sizeBytes,
      createdAt: doc.createdAt.getTime(),
      tags: JSON.stringify(tags),
      status: 'INGESTING',
      tokenCount: 0,
      chunkCount: 0,
      embeddedChunks: 0,
    });
    return doc;
  }

  /** The owner's document, or null when it does not exist or belongs to someone else. */
  async get(ownerId: string, id: string): Promise<Document | null> {
    const hash = await this.redis.hgetall(docKey(id));
    if (!hash.id || hash.ownerId !== ownerId) return null;
    return fromHash(hash);
  }

  /** Documents by id whatever their owner, in the order asked (null for missing ones); for the service's own look-ups. Sent together: on one server auto-pipelining writes them at once. */
  async getMany(ids: readonly string[]): Promise<(Document | null)[]> {
    const rows = await Promise.all(ids.map((id) => this.redis.hgetall(docKey(id))));
    return rows.map((hash) => (hash.id ? fromHash(hash) : null));
  }

  /** Newest first; `after` is the id of the last document of the previous page. */
  async list(ownerId: string, first: number, after?: string): Promise<Document[]> {
    let start = 0;
    if (after) {
      const rank = await this.redis.zrevrank(ownerKey(ownerId), after);
      if (rank === null) return [];
      start = rank + 1;
    }
    const ids = await this.redis.zrevrange(ownerKey(ownerId), start, start + first - 1);
    return (await this.getMany(ids)).filter((doc): doc is Document => doc !== null);
  }

  /** False when the document is no longer being ingested (deleted meanwhile). */
  async saveChunks(docId: string, chunks: readonly Chunk[], tokenCount: number, leaseUntil: number): Promise<boolean> {
    const fields = chunks.flatMap((chunk) => [String(chunk.index), JSON.stringify({ text: chunk.text, heading: chunk.heading, tokenCount: chunk.tokenCount })]);
    if ((await this.redis.eval(SAVE_CHUNKS, 2, docKey(docId), chunksKey(docId), tokenCount, chunks.length, ...fields)) !== 1) return false;
    await this.redis.zadd(INGESTING, leaseUntil, docId);
    return true;
  }

  /** Chunks `[from, from + count)` of a document, in order (fewer at the end). */
  async chunks(docId: string, from: number, count: number): Promise<Chunk[]> {
    const indices = Array.from({ length: count }, (_, i) => String(from + i));
    if (indices.length === 0) return [];
    const values = await this.redis.hmget(chunksKey(docId), ...indices);
    return values.flatMap((value, i) => (value ? [{ index: from + i, ...(JSON.parse(value) as Omit<Chunk, 'index'>) }] : []));
  }

  /** Chunks of many documents at once, for search results: `refs` are [docId, chunk index] pairs. */
  async chunksAt(refs: readonly (readonly [string, number])[]): Promise<(Chunk | null)[]> {
    const rows = await Promise.all(refs.map(([docId, index]) => this.redis.hget(chunksKey(docId), String(index))));
    return rows.map((value, i) => (typeof value === 'string' ? { index: refs[i][1], ...(JSON.parse(value) as Omit<Chunk, 'index'>) } : null));
  }

  /** Records progress, or the end (READY / FAILED), of an ingestion; false when the document is gone or already ended. */
  async advance(docId: string, embeddedChunks: number, status: DocumentStatus, failureReason = '', leaseUntil = 0): Promise<boolean> {
    const advanced = (await this.redis.eval(ADVANCE, 1, docKey(docId), embeddedChunks, status, failureReason)) === 1;
    // A lease whose document is gone or ended is dropped too: the sweep asks here about every expired one.
    if (advanced && status === 'INGESTING') await this.redis.zadd(INGESTING, leaseUntil, docId);
    else if (status !== 'INGESTING') await this.redis.zrem(INGESTING, docId);
    return advanced;
  }

  /** Documents whose ingestion lease ran out before `now`. */
  expiredIngestions(now: number): Promise<string[]> {
    return this.redis.zrangebyscore(INGESTING, 0, now, 'LIMIT', 0, 100);
  }

  /** False when the document does not exist or belongs to someone else. */
  async delete(ownerId: string, id: string): Promise<boolean> {
    if ((await this.redis.eval(DELETE, 2, docKey(id), chunksKey(id), ownerId)) !== 1) return false;
    await this.redis.zrem(ownerKey(ownerId), id);
    await this.redis.zrem(INGESTING, id);
    return true;
  }
}

function fromHash(hash: Record<string, string>): Document {
  return {
    id: hash.id,
    ownerId: hash.ownerId,
    title: hash.title,
    content: hash.content,
    tags: hash.tags ? (JSON.parse(hash.tags) as string[]) : [],
    sizeBytes: Number(hash.sizeBytes),
    createdAt: new Date(Number(hash.createdAt)),
    // Documents stored before ingestion existed were never chunked: they count as failed, with the reason.
    status: (hash.status as DocumentStatus | undefined) ?? 'FAILED',
    failureReason: hash.status ? hash.failureReason || null : 'stored before ingestion existed; add it again to make it searchable',
    tokenCount: Number(hash.tokenCount ?? 0),
    chunkCount: Number(hash.chunkCount ?? 0),
    embeddedChunks: Number(hash.embeddedChunks ?? 0),
  };
}

const INGESTING = 'kb:ingesting';
const docKey = (id: string) => `kb:doc:{${id}}`;
const chunksKey = (id: string) => `kb:doc:{${id}}:chunks`;
const ownerKey = (ownerId: string) => `kb:user:${ownerId}:docs`;
