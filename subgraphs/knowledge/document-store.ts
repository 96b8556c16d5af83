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

/** Writes the document and its place in the owner's index together. */
const ADD = `
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'ownerId', ARGV[2], 'title', ARGV[3], 'content', ARGV[4], 'sizeBytes', ARGV[5],
  'createdAt', ARGV[6], 'tags', ARGV[7], 'status', 'INGESTING', 'tokenCount', 0, 'chunkCount', 0, 'embeddedChunks', 0)
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
return 1
`;

/**
 * Records the chunks of a document still being ingested: refuses (returns 0)
 * when the document was deleted meanwhile, so a late ingestion writes nothing.
 */
const SAVE_CHUNKS = `
if redis.call('HGET', KEYS[1], 'status') ~= 'INGESTING' then return 0 end
redis.call('DEL', KEYS[2])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'tokenCount', ARGV[1], 'chunkCount', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], redis.call('HGET', KEYS[1], 'id'))
return 1
`;

/**
 * Moves a document still INGESTING forward, renewing its lease, or ends it
 * (READY / FAILED) and drops the lease; 0 when it was deleted or already ended.
 */
const ADVANCE = `
if redis.call('HGET', KEYS[1], 'status') ~= 'INGESTING' then return 0 end
redis.call('HSET', KEYS[1], 'embeddedChunks', ARGV[1], 'status', ARGV[2], 'failureReason', ARGV[3])
if ARGV[2] == 'INGESTING' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5]) else redis.call('ZREM', KEYS[2], ARGV[5]) end
return 1
`;

/** Removes the document, its chunks and its place in the owner's index; 0 when it was not the owner's. */
const DELETE = `
if redis.call('HGET', KEYS[1], 'ownerId') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
return 1
`;

/**
 * Documents in Redis under `kb:`: a hash per document, a hash of its chunks
 * (index → JSON), and per owner a sorted set of document ids by creation time
 * (the index `documents` pages through). Vectors live apart, in VectorStore.
 * Documents being ingested hold a lease in `kb:ingesting` (id → deadline),
 * renewed at every step, so a replica that dies mid-way is noticed.
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
    await this.redis.eval(ADD, 3, docKey(doc.id), ownerKey(ownerId), INGESTING, doc.id, ownerId, title, content, doc.sizeBytes, doc.createdAt.getTime(), JSON.stringify(tags), leaseUntil);
    return doc;
  }

  /** The owner's document, or null when it does not exist or belongs to someone else. */
  async get(ownerId: string, id: string): Promise<Document | null> {
    const hash = await this.redis.hgetall(docKey(id));
    if (!hash.id || hash.ownerId !== ownerId) return null;
    return fromHash(hash);
  }

  /** Documents by id whatever their owner, in the order asked (null for missing ones); for the service's own look-ups. */
  async getMany(ids: readonly string[]): Promise<(Document | null)[]> {
    if (ids.length === 0) return [];
    const tx = this.redis.multi();
    for (const id of ids) tx.hgetall(docKey(id));
    const rows = (await tx.exec()) ?? [];
    return rows.map(([, hash]) => (hash && (hash as Record<string, string>).id ? fromHash(hash as Record<string, string>) : null));
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
    return (await this.redis.eval(SAVE_CHUNKS, 3, docKey(docId), chunksKey(docId), INGESTING, tokenCount, chunks.length, leaseUntil, ...fields)) === 1;
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
    if (refs.length === 0) return [];
    const tx = this.redis.multi();
    for (const [docId, index] of refs) tx.hget(chunksKey(docId), String(index));
    const rows = (await tx.exec()) ?? [];
    return rows.map(([, value], i) => (typeof value === 'string' ? { index: refs[i][1], ...(JSON.parse(value) as Omit<Chunk, 'index'>) } : null));
  }

  /** Records progress, or the end (READY / FAILED), of an ingestion; false when the document is gone or already ended. */
  async advance(docId: string, embeddedChunks: number, status: DocumentStatus, failureReason = '', leaseUntil = 0): Promise<boolean> {
    return (await this.redis.eval(ADVANCE, 2, docKey(docId), INGESTING, embeddedChunks, status, failureReason, leaseUntil, docId)) === 1;
  }

  /** Documents whose ingestion lease ran out before `now`. */
  expiredIngestions(now: number): Promise<string[]> {
    return this.redis.zrangebyscore(INGESTING, 0, now, 'LIMIT', 0, 100);
  }

  /** False when the document does not exist or belongs to someone else. */
  async delete(ownerId: string, id: string): Promise<boolean> {
    return (await this.redis.eval(DELETE, 4, docKey(id), chunksKey(id), ownerKey(ownerId), INGESTING, ownerId, id)) === 1;
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
const docKey = (id: string) => `kb:doc:${id}`;
const chunksKey = (id: string) => `kb:doc:${id}:chunks`;
const ownerKey = (ownerId: string) => `kb:user:${ownerId}:docs`;
