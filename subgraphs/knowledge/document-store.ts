import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';

export interface Document {
  id: string;
  ownerId: string;
  title: string;
  content: string;
  sizeBytes: number;
  createdAt: Date;
}

/** Writes the document and its place in the owner's index together. */
const ADD = `
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'ownerId', ARGV[2], 'title', ARGV[3], 'content', ARGV[4], 'sizeBytes', ARGV[5], 'createdAt', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
return 1
`;

/**
 * Documents in Redis under `kb:`: a hash per document and, per owner, a sorted
 * set of document ids by creation time (the index `documents` pages through).
 */
export class DocumentStore {
  constructor(private readonly redis: Redis) {}

  async add(ownerId: string, title: string, content: string): Promise<Document> {
    const doc: Document = { id: randomUUID(), ownerId, title, content, sizeBytes: Buffer.byteLength(content), createdAt: new Date() };
    await this.redis.eval(ADD, 2, docKey(doc.id), ownerKey(ownerId), doc.id, ownerId, title, content, doc.sizeBytes, doc.createdAt.getTime());
    return doc;
  }

  /** The owner's document, or null when it does not exist or belongs to someone else. */
  async get(ownerId: string, id: string): Promise<Document | null> {
    const hash = await this.redis.hgetall(docKey(id));
    if (!hash.id || hash.ownerId !== ownerId) return null;
    return fromHash(hash);
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
    if (ids.length === 0) return [];
    const tx = this.redis.multi();
    for (const id of ids) tx.hgetall(docKey(id));
    const rows = (await tx.exec()) ?? [];
    return rows.map(([, hash]) => hash as Record<string, string>).filter((hash) => hash.id).map(fromHash);
  }
}

function fromHash(hash: Record<string, string>): Document {
  return {
    id: hash.id,
    ownerId: hash.ownerId,
    title: hash.title,
    content: hash.content,
    sizeBytes: Number(hash.sizeBytes),
    createdAt: new Date(Number(hash.createdAt)),
  };
}

const docKey = (id: string) => `kb:doc:${id}`;
const ownerKey = (ownerId: string) => `kb:user:${ownerId}:docs`;
