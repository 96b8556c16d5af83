import Redis from 'ioredis';
import { codedError, ErrorCode } from '../../lib/errors';

/** A document as the vector index knows it: whose it is and the tags searches can filter on. */
export interface IndexedDocument {
  userId: string;
  docId: string;
  tags: string[];
}

/** A published document as recorded in Redis; `seq` is the change that last published it. */
export interface IndexedRecord extends IndexedDocument {
  chunkCount: number;
  seq: number;
}

/**
 * One entry of the change stream. `seq` numbers every change (publish or remove) from 1 with no gaps,
 * so a follower that sees anything but `previous + 1` knows it missed something.
 */
export type IndexChange = { op: 'add'; seq: number; userId: string; docId: string; tags: string[]; chunkCount: number } | { op: 'delete'; seq: number; userId: string; docId: string };

/** Where a follower starts: the last change number and the stream entry that carries it. */
export interface FeedPosition {
  seq: number;
  /** The stream id to read after (`0-0` when the stream is empty). */
  streamId: string;
}

export interface FeedEntry {
  streamId: string;
  change: IndexChange;
}

export interface VectorStoreOptions {
  /** Must start with `kb:`; tests use their own so that they never meet each other's keys. Default `kb:`. */
  keyPrefix?: string;
  /**
   * Whether publish/remove append to the change stream. By default only a real Redis connection does:
   * ioredis-mock numbers stream ids by length (its XADD breaks once the stream is trimmed) and delivers
   * each entry to a single XREAD in the whole process, so there is nothing a follower could use.
   */
  changeFeed?: boolean;
  /** The stream is trimmed to about this many entries (MAXLEN ~). Default 100 000. */
  maxChanges?: number;
  /** Vectors written but never published (an ingestion that died) expire after this. Default one day. */
  unpublishedTtlSeconds?: number;
}

/** HSETs the chunk vectors; only vectors of an unpublished document (no marker: KEYS[2]) get (or keep) the expiry. */
const PUT = `
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
`;

/**
 * Step one of publishing, on the document's own slot: when chunks 0..n-1 all
 * have vectors (and no others), keeps them for good and marks them published:
 * returns {1}, or {0, what is missing}.
 */
const SEAL_VECTORS = `
local n = tonumber(ARGV[1])
local have = redis.call('HLEN', KEYS[1])
if have ~= n then return {0, 'has ' .. have .. ' chunk vectors'} end
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[1], tostring(i)) == 0 then return {0, 'has no vector for chunk ' .. i} end
end
redis.call('PERSIST', KEYS[1])
redis.call('SET', KEYS[2], '1')
return {1, ''}
`;

/**
 * Step two of publishing, on the index's slot: records the document and appends the numbered change.
 * The record is stored as "<seq>:<json>" because the JSON is built by the caller and the seq here.
 */
const PUBLISH = `
local seqText = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('HSET', KEYS[1], ARGV[1], seqText .. ':' .. ARGV[2])
if ARGV[6] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'seq', seqText, 'op', 'add', 'doc', ARGV[1], 'user', ARGV[3], 'tags', ARGV[4], 'chunks', ARGV[7])
end
return seqText
`;

/** Drops the record (only the owner's: {0} otherwise) and, if there was one, appends the numbered delete change. */
const REMOVE = `
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return {1} end
local colon = string.find(record, ':', 1, true)
if string.sub(record, colon + 1, colon + #ARGV[2]) ~= ARGV[2] then return {0} end
redis.call('HDEL', KEYS[1], ARGV[1])
local seqText = string.format('%d', redis.call('INCR', KEYS[2]))
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'seq', seqText, 'op', 'delete', 'doc', ARGV[1], 'user', ARGV[3])
end
return {1}
`;

/** The change number and the stream's last entry, read together so that they agree. */
const POSITION = `
local seq = redis.call('GET', KEYS[1])
if not seq then seq = '0' end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then id = last[1][1] end
return {seq, id}
`;

/**
 * Chunk vectors of knowledge documents in Redis, and the record of which documents are searchable.
 *
 * - `kb:vec:{<docId>}`: hash, chunk number → float32 little-endian bytes; `kb:vec:{<docId>}:published`
 *   once the vectors are kept for good.
 * - `kb:{index}:indexed`: hash, docId → `<seq>:{"userId","tags","chunkCount"}` for every published document.
 * - `kb:{index}:seq`: the last change number; `kb:{index}:changes`: the change stream (MAXLEN ~).
 *
 * Every replica's in-process index is rebuilt from `kb:{index}:indexed` and kept current by the stream.
 *
 * On a Redis Cluster a document's vectors and the index are in different slots, so publishing and
 * removing are two steps each, ordered so that the index never names vectors that are not there:
 * publish seals the vectors, then records them; remove drops the record (and numbers the change),
 * then the vectors. A crash between leaves at worst vectors that nothing names (a publish's expire
 * never; a removal's are only storage) and never a searchable record without vectors.
 */
export class VectorStore {
  readonly changeFeed: boolean;
  private readonly prefix: string;
  private readonly maxChanges: number;
  private readonly unpublishedTtlSeconds: number;

  constructor(
    private readonly redis: Redis,
    options: VectorStoreOptions = {},
  ) {
    this.prefix = options.keyPrefix ?? 'kb:';
    if (!this.prefix.startsWith('kb:')) throw new TypeError(`VectorStore expects a keyPrefix starting with "kb:", but got "${this.prefix}"`);
    this.changeFeed = options.changeFeed ?? redis instanceof Redis;
    this.maxChanges = options.maxChanges ?? 100_000;
    this.unpublishedTtlSeconds = options.unpublishedTtlSeconds ?? 24 * 3600;
  }

  /** The stream key, for a follower's own connection. */
  get changesKey(): string {
    return `${this.prefix}{index}:changes`;
  }

  /**
   * Stores the vectors of chunks [firstChunk, firstChunk + vectors.length). Idempotent (a retry rewrites
   * the same bytes). Until the document is published they expire, so an ingestion that dies leaves nothing.
   */
  async putVectors(docId: string, firstChunk: number, vectors: Float32Array[]): Promise<void> {
    if (!Number.isInteger(firstChunk) || firstChunk < 0) throw new TypeError(`putVectors expects firstChunk to be an integer ≥ 0, but got ${firstChunk}`);
    if (vectors.length === 0) return;
    const dimensions = vectors[0].length;
    const args: (string | Buffer)[] = [];
    vectors.forEach((vector, i) => {
      if (vector.length === 0 || vector.length !== dimensions) {
        throw new TypeError(`putVectors expects vectors of one non-zero length, but chunk ${firstChunk + i} has ${vector.length} values and chunk ${firstChunk} has ${dimensions}`);
      }
      args.push(String(firstChunk + i), encodeVector(vector));
    });
    await this.redis.eval(PUT, 2, this.vectorsKey(docId), this.publishedKey(docId), this.unpublishedTtlSeconds, ...args);
  }

  /**
   * Makes the document searchable: seals its vectors, then records it in `kb:{index}:indexed` and appends an `add` change.
   * Refuses (INTERNAL_SERVER_ERROR) unless chunks 0..chunkCount-1, and only they, have vectors.
   */
  async publish(doc: IndexedDocument, chunkCount: number): Promise<IndexChange> {
    if (!Number.isInteger(chunkCount) || chunkCount < 0) throw new TypeError(`publish expects chunkCount to be an integer ≥ 0, but got ${chunkCount}`);
    const record = JSON.stringify({ userId: doc.userId, tags: doc.tags, chunkCount });
    const [ok, detail] = (await this.redis.eval(SEAL_VECTORS, 2, this.vectorsKey(doc.docId), this.publishedKey(doc.docId), chunkCount)) as [number, string];
    if (ok !== 1) {
      throw codedError(ErrorCode.InternalServerError, `cannot publish document ${doc.docId}: expected vectors for chunks 0 to ${chunkCount - 1}, but it ${detail}`, {
        docId: doc.docId,
      });
    }
    const seq = (await this.redis.eval(
      PUBLISH,
      3,
      this.indexedKey,
      this.seqKey,
      this.changesKey,
      doc.docId,
      record,
      doc.userId,
      JSON.stringify(doc.tags),
      this.maxChanges,
      this.changeFeed ? '1' : '0',
      chunkCount,
    )) as string;
    return { op: 'add', seq: Number(seq), userId: doc.userId, docId: doc.docId, tags: [...doc.tags], chunkCount };
  }

  /**
   * Deletes the document's record and, if it was published, appends a `delete` change (one script),
   * then its vectors. Idempotent: a document that is not published appends nothing. FORBIDDEN when the
   * record is another user's.
   */
  async remove(userId: string, docId: string): Promise<void> {
    const [ok] = (await this.redis.eval(REMOVE, 3, this.indexedKey, this.seqKey, this.changesKey, docId, recordOwnerPrefix(userId), userId, this.maxChanges, this.changeFeed ? '1' : '0')) as [number];
    if (ok !== 1) throw codedError(ErrorCode.Forbidden, `cannot remove the vectors of document ${docId}: it is indexed for another user than ${userId}`, { docId });
    await this.redis.del(this.vectorsKey(docId), this.publishedKey(docId));
  }

  /** The vectors of a document in chunk order (empty when there are none). */
  async load(docId: string): Promise<Float32Array[]> {
    return decodeVectors(docId, await this.redis.hgetallBuffer(this.vectorsKey(docId)));
  }

  /**
   * A published document's record and vectors (null when it is not published now). The vectors are
   * read first: a record is written only after its vectors are sealed and removed before they are, so a
   * record still there after the vectors were read names those very vectors.
   */
  async loadPublished(docId: string): Promise<{ record: IndexedRecord; vectors: Float32Array[] } | null> {
    const hash = await this.redis.hgetallBuffer(this.vectorsKey(docId));
    const raw = await this.redis.hget(this.indexedKey, docId);
    if (typeof raw !== 'string') return null;
    return { record: parseRecord(docId, raw), vectors: decodeVectors(docId, hash) };
  }

  /** The position to follow the stream from; read it BEFORE listing documents, so no change falls between. */
  async position(): Promise<FeedPosition> {
    const [seq, streamId] = (await this.redis.eval(POSITION, 2, this.seqKey, this.changesKey)) as [string, string];
    return { seq: Number(seq), streamId };
  }

  /** Every published document, a page at a time (HSCAN: a document may appear twice, never not at all). */
  async *publishedDocuments(pageSize = 200): AsyncGenerator<IndexedRecord[]> {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(this.indexedKey, cursor, 'COUNT', pageSize);
      const page: IndexedRecord[] = [];
      for (let i = 0; i < flat.length; i += 2) page.push(parseRecord(flat[i], flat[i + 1]));
      if (page.length > 0) yield page;
      cursor = next;
    } while (cursor !== '0');
  }

  /** The vectors of several documents, sent together (on one server auto-pipelined: one write), in the order asked. */
  async loadMany(docIds: readonly string[]): Promise<Float32Array[][]> {
    return Promise.all(docIds.map(async (docId) => decodeVectors(docId, await this.redis.hgetallBuffer(this.vectorsKey(docId)))));
  }

  /** Reads changes after `afterId`, waiting up to `blockMs` on `reader` (a connection of its own: XREAD BLOCK holds it). */
  async readChanges(reader: Redis, afterId: string, blockMs: number, count = 500): Promise<FeedEntry[]> {
    const reply = await reader.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.changesKey, afterId);
    if (!reply) return [];
    return reply.flatMap(([, entries]) => entries.map(([streamId, fields]) => ({ streamId, change: parseChange(streamId, fields) })));
  }

  private get indexedKey(): string {
    return `${this.prefix}{index}:indexed`;
  }

  private get seqKey(): string {
    return `${this.prefix}{index}:seq`;
  }

  /** The index's keys share the tag `{index}` (one Cluster slot, for the publish and remove scripts); a document's vectors its id. */
  private vectorsKey(docId: string): string {
    return `${this.prefix}vec:{${docId}}`;
  }

  private publishedKey(docId: string): string {
    return `${this.prefix}vec:{${docId}}:published`;
  }
}

/** The start of a record's JSON for `userId`: the remove script compares it without a JSON parser (ioredis-mock's Lua has no cjson). */
function recordOwnerPrefix(userId: string): string {
  return `{"userId":${JSON.stringify(userId)},`;
}

function parseRecord(docId: string, raw: string): IndexedRecord {
  const colon = raw.indexOf(':');
  const { userId, tags, chunkCount } = JSON.parse(raw.slice(colon + 1)) as { userId: string; tags: string[]; chunkCount: number };
  return { docId, userId, tags, chunkCount, seq: Number(raw.slice(0, colon)) };
}

function parseChange(streamId: string, flat: string[]): IndexChange {
  const fields = new Map<string, string>();
  for (let i = 0; i < flat.length; i += 2) fields.set(flat[i], flat[i + 1]);
  const seq = Number(fields.get('seq'));
  const docId = fields.get('doc') ?? '';
  const userId = fields.get('user') ?? '';
  const op = fields.get('op');
  if (op === 'add') return { op, seq, docId, userId, tags: JSON.parse(fields.get('tags') ?? '[]') as string[], chunkCount: Number(fields.get('chunks')) };
  if (op === 'delete') return { op, seq, docId, userId };
  throw codedError(ErrorCode.InternalServerError, `change stream entry ${streamId} has op "${op}", expected "add" or "delete"`);
}

function encodeVector(vector: Float32Array): Buffer {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i], i * 4);
  return bytes;
}

/** Chunk number → bytes, into vectors in chunk order; the fields must be exactly 0..n-1 of one length. */
function decodeVectors(docId: string, hash: Record<string, Buffer>): Float32Array[] {
  const n = Object.keys(hash).length;
  const vectors = new Array<Float32Array>(n);
  let byteLength = -1;
  for (const [field, bytes] of Object.entries(hash)) {
    const chunk = Number(field);
    if (!Number.isInteger(chunk) || chunk < 0 || chunk >= n || vectors[chunk]) {
      throw codedError(ErrorCode.InternalServerError, `vectors of document ${docId} are not chunks 0 to ${n - 1}: found field "${field}"`, { docId });
    }
    if (byteLength < 0) byteLength = bytes.length;
    if (bytes.length !== byteLength || bytes.length % 4 !== 0 || bytes.length === 0) {
      throw codedError(ErrorCode.InternalServerError, `vectors of document ${docId} should all be ${byteLength} bytes (float32), but chunk ${chunk} has ${bytes.length}`, { docId });
    }
    const vector = new Float32Array(bytes.length / 4);
    for (let i = 0; i < vector.length; i++) vector[i] = bytes.readFloatLE(i * 4);
    vectors[chunk] = vector;
  }
  return vectors;
}
