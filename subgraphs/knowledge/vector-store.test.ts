import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { VectorStore } from './vector-store';

const vector = (...values: number[]) => Float32Array.from(values);
const docId = () => `doc-${randomUUID()}`;
const prefix = () => `kb:test-${randomUUID()}:`;

describe('VectorStore on Redis', () => {
  let server: TestRedis;
  let redis: Redis;
  let reader: Redis;

  beforeAll(async () => {
    server = await startTestRedis();
    redis = server.connect();
    reader = server.connect();
  });
  afterAll(() => server.stop());

  test('stores float32 little-endian bytes and loads them in chunk order, whatever order the batches came in', async () => {
    const keyPrefix = prefix();
    const store = new VectorStore(redis, { keyPrefix });
    const id = docId();
    const vectors = [vector(0.5, -1.25, 3e-8), vector(1, 0, 0), vector(0.1, 0.2, 0.3), vector(-0, 7, -7)];
    await store.putVectors(id, 2, vectors.slice(2));
    await store.putVectors(id, 0, vectors.slice(0, 2));
    await store.publish({ userId: 'u1', docId: id, tags: [] }, 4);

    expect(await store.load(id)).toEqual(vectors);
    const raw = await redis.hgetBuffer(`${keyPrefix}vec:{${id}}`, '0');
    const expected = Buffer.alloc(12);
    [0.5, -1.25, 3e-8].forEach((value, i) => expected.writeFloatLE(value, i * 4));
    expect(raw).toEqual(expected);
  });

  test('putVectors refuses vectors of different lengths in one batch, naming the chunks', async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix() });
    await expect(store.putVectors(docId(), 3, [vector(1, 2), vector(1, 2, 3)])).rejects.toThrow('chunk 4 has 3 values and chunk 3 has 2');
  });

  test('publish refuses a document until chunks 0..n-1, and only they, have vectors', async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix() });
    const id = docId();
    await store.putVectors(id, 0, [vector(1, 0)]);
    await store.putVectors(id, 2, [vector(0, 1)]);
    await expect(store.publish({ userId: 'u1', docId: id, tags: [] }, 2)).rejects.toThrow(`cannot publish document ${id}: expected vectors for chunks 0 to 1, but it has no vector for chunk 1`);
    await expect(store.publish({ userId: 'u1', docId: id, tags: [] }, 3)).rejects.toThrow('has 2 chunk vectors');
    await store.putVectors(id, 1, [vector(0.5, 0.5)]);
    await expect(store.publish({ userId: 'u1', docId: id, tags: [] }, 3)).resolves.toMatchObject({ op: 'add', docId: id });
  });

  test('publish records the document and appends a numbered add change together', async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix() });
    const id = docId();
    const before = await store.position();
    await store.putVectors(id, 0, [vector(1, 0), vector(0, 1)]);
    const change = await store.publish({ userId: 'u1', docId: id, tags: ['red', 'blue'] }, 2);

    expect(change).toEqual({ op: 'add', seq: before.seq + 1, userId: 'u1', docId: id, tags: ['red', 'blue'], chunkCount: 2 });
    const entries = await store.readChanges(reader, before.streamId, 100);
    expect(entries.map((entry) => entry.change)).toEqual([change]);
    expect(await store.position()).toEqual({ seq: change.seq, streamId: entries[0].streamId });
    const records = [];
    for await (const page of store.publishedDocuments()) records.push(...page);
    expect(records).toEqual([{ docId: id, userId: 'u1', tags: ['red', 'blue'], chunkCount: 2, seq: change.seq }]);
    expect(await store.loadPublished(id)).toEqual({ record: records[0], vectors: [vector(1, 0), vector(0, 1)] });
  });

  test('vectors expire until their document is published, then stay', async () => {
    const keyPrefix = prefix();
    const store = new VectorStore(redis, { keyPrefix, unpublishedTtlSeconds: 600 });
    const id = docId();
    await store.putVectors(id, 0, [vector(1, 0)]);
    const ttl = await redis.ttl(`${keyPrefix}vec:{${id}}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600);
    await store.publish({ userId: 'u1', docId: id, tags: [] }, 1);
    expect(await redis.ttl(`${keyPrefix}vec:{${id}}`)).toBe(-1);
    await store.putVectors(id, 0, [vector(0, 1)]);
    expect(await redis.ttl(`${keyPrefix}vec:{${id}}`)).toBe(-1);
  });

  test('remove deletes vectors and record and appends a delete change; removing again changes nothing', async () => {
    const keyPrefix = prefix();
    const store = new VectorStore(redis, { keyPrefix });
    const id = docId();
    await store.putVectors(id, 0, [vector(1, 0)]);
    const added = await store.publish({ userId: 'u1', docId: id, tags: [] }, 1);

    await store.remove('u1', id);
    expect(await store.load(id)).toEqual([]);
    expect(await store.loadPublished(id)).toBeNull();
    await store.remove('u1', id);
    expect((await store.position()).seq).toBe(added.seq + 1);
    const changes = (await store.readChanges(reader, '0-0', 100)).map((entry) => entry.change);
    expect(changes).toEqual([added, { op: 'delete', seq: added.seq + 1, userId: 'u1', docId: id }]);
    expect((await redis.keys(`${keyPrefix}*`)).sort()).toEqual([`${keyPrefix}{index}:changes`, `${keyPrefix}{index}:seq`]);
  });

  test('remove deletes unpublished vectors without telling anyone', async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix() });
    const id = docId();
    await store.putVectors(id, 0, [vector(1, 0)]);
    await store.remove('u1', id);
    expect(await store.load(id)).toEqual([]);
    expect((await store.position()).seq).toBe(0);
  });

  test("remove refuses another user's document and leaves it", async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix() });
    const id = docId();
    await store.putVectors(id, 0, [vector(1, 0)]);
    await store.publish({ userId: 'owner"with:quotes', docId: id, tags: [] }, 1);
    await expect(store.remove('owner', id)).rejects.toThrow(`cannot remove the vectors of document ${id}: it is indexed for another user than owner`);
    expect(await store.load(id)).toEqual([vector(1, 0)]);
    await store.remove('owner"with:quotes', id);
    expect(await store.load(id)).toEqual([]);
  });

  test('the change stream is trimmed to about maxChanges entries', async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix(), maxChanges: 10 });
    for (let i = 0; i < 300; i++) await store.publish({ userId: 'u1', docId: `empty-${i}`, tags: [] }, 0);
    const length = await redis.xlen(store.changesKey);
    expect(length).toBeGreaterThanOrEqual(10);
    expect(length).toBeLessThan(300);
    expect((await store.position()).seq).toBe(300);
  });

  test('keys must stay under kb:', () => {
    expect(() => new VectorStore(redis, { keyPrefix: 'vec:' })).toThrow('keyPrefix starting with "kb:", but got "vec:"');
  });
});

describe('VectorStore on the in-memory Redis', () => {
  const redis = connectRedis('memory://', createLogger({ test: 'vector-store' }));
  afterAll(() => redis.disconnect());

  test('has no change stream, but publishes, loads and removes', async () => {
    const store = new VectorStore(redis, { keyPrefix: prefix() });
    expect(store.changeFeed).toBe(false);
    const id = docId();
    await store.putVectors(id, 0, [vector(0.25, -4), vector(1, 1)]);
    const added = await store.publish({ userId: 'u1', docId: id, tags: ['t'] }, 2);
    expect(await store.loadPublished(id)).toEqual({
      record: { docId: id, userId: 'u1', tags: ['t'], chunkCount: 2, seq: added.seq },
      vectors: [vector(0.25, -4), vector(1, 1)],
    });
    await store.remove('u1', id);
    expect(await store.load(id)).toEqual([]);
    expect((await store.position()).seq).toBe(added.seq + 1);
    expect(await redis.exists(store.changesKey)).toBe(0);
  });
});
