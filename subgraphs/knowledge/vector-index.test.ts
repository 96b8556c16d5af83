import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { Logger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { type SearchHit, UserVectors } from './user-vectors';
import { VectorIndex } from './vector-index';
import { VectorStore } from './vector-store';
import { prng as random } from '../../lib/prng';

const next = random(7);
const randomVector = (dimensions: number) => Float32Array.from({ length: dimensions }, () => next() * 2 - 1);
const randomVectors = (count: number, dimensions: number) => Array.from({ length: count }, () => randomVector(dimensions));

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

interface TestDoc {
  docId: string;
  tags: string[];
  vectors: Float32Array[];
}

/** The true top-k by brute force in float64, over the documents `accept` keeps. */
function reference(docs: TestDoc[], query: Float32Array, k: number, accept: (doc: TestDoc) => boolean = () => true): SearchHit[] {
  return docs
    .filter(accept)
    .flatMap((doc) => doc.vectors.map((vector, chunk) => ({ docId: doc.docId, chunk, score: cosine(vector, query) })))
    .sort((a, b) => b.score - a.score)
    .slice(0, k);
}

const key = (hit: SearchHit) => `${hit.docId}/${hit.chunk}`;
const recall = (found: SearchHit[], truth: SearchHit[]) => found.filter((hit) => truth.some((t) => key(t) === key(hit))).length / truth.length;

function makeDocs(count: number, chunks: number, dimensions: number, tagsOf: (i: number) => string[] = () => []): TestDoc[] {
  return Array.from({ length: count }, (_, i) => ({ docId: `doc-${i}`, tags: tagsOf(i), vectors: randomVectors(chunks, dimensions) }));
}

function fill(index: UserVectors, docs: TestDoc[]): void {
  docs.forEach((doc, i) => index.add(doc.docId, doc.tags, i + 1, doc.vectors));
}

describe('UserVectors', () => {
  const D = 24;

  test('exact search returns the true top-k by cosine similarity, best first', () => {
    const docs = makeDocs(30, 10, D);
    const index = new UserVectors(D, { exactThreshold: 1000 });
    fill(index, docs);
    expect(index.mode).toBe('exact');
    for (let q = 0; q < 20; q++) {
      const query = randomVector(D);
      const found = index.search(query, 5);
      const truth = reference(docs, query, 5);
      expect(found.map(key)).toEqual(truth.map(key));
      found.forEach((hit, i) => expect(hit.score).toBeCloseTo(truth[i].score, 5));
    }
  });

  test('scores are cosine similarities whatever the lengths of stored and query vectors', () => {
    const index = new UserVectors(2, { exactThreshold: 10 });
    index.add('d', [], 1, [Float32Array.of(3, 0), Float32Array.of(0, 0.1)]);
    const [first, second] = index.search(Float32Array.of(5, 5), 2);
    expect(first.score).toBeCloseTo(Math.SQRT1_2, 6);
    expect(second.score).toBeCloseTo(Math.SQRT1_2, 6);
    expect(index.search(Float32Array.of(-2, 0), 2)).toEqual([
      { docId: 'd', chunk: 1, score: 0 },
      { docId: 'd', chunk: 0, score: -1 },
    ]);
  });

  test('refuses vectors and queries of another dimension than its own, changing nothing', () => {
    const index = new UserVectors(D, { exactThreshold: 10 });
    index.add('a', [], 1, randomVectors(2, D));
    expect(() => index.add('b', [], 2, [randomVector(D), randomVector(16)])).toThrow(`cannot index document b: this user's vectors have ${D} dimensions, but chunk 1 has 16`);
    expect(index.size).toBe(2);
    expect(() => index.search(randomVector(16), 3)).toThrow(`search expects a query vector of ${D} dimensions (those indexed), but got 16`);
  });

  test('adding a document again replaces its vectors', () => {
    const index = new UserVectors(D, { exactThreshold: 10 });
    const [old, fresh] = randomVectors(2, D);
    index.add('a', [], 1, [old, old]);
    index.add('a', [], 2, [fresh]);
    expect(index.size).toBe(1);
    expect(index.seqOf('a')).toBe(2);
    expect(index.search(old, 5)).toEqual([{ docId: 'a', chunk: 0, score: expect.closeTo(cosine(old, fresh), 5) }]);
  });

  test('builds an HNSW graph above the threshold that finds what exact search finds, and drops it at half the threshold', async () => {
    const docs = makeDocs(150, 20, D);
    const index = new UserVectors(D, { exactThreshold: 1000 });
    fill(index, docs);
    await index.indexed();
    expect(index.mode).toBe('hnsw');
    let total = 0;
    for (let q = 0; q < 50; q++) {
      const query = randomVector(D);
      const found = index.search(query, 5);
      expect(found).toHaveLength(5);
      total += recall(found, reference(docs, query, 5));
    }
    expect(total / 50).toBeGreaterThan(0.9);
    // Every stored vector is its own nearest neighbour: none was left unreachable by the graph.
    const lost = docs
      .flatMap((doc) => doc.vectors.map((vector, chunk) => ({ doc, chunk, hit: index.search(vector, 1)[0] })))
      .filter(({ doc, chunk, hit }) => hit.docId !== doc.docId || hit.chunk !== chunk || Math.abs(hit.score - 1) > 1e-4)
      .map(({ doc, chunk }) => `${doc.docId}/${chunk}`);
    expect(lost).toEqual([]);

    docs.slice(0, 125).forEach((doc) => index.remove(doc.docId));
    expect(index.size).toBe(500);
    expect(index.mode).toBe('exact');
    const query = randomVector(D);
    expect(index.search(query, 5).map(key)).toEqual(reference(docs.slice(125), query, 5).map(key));
  });

  test('removals and slot reuse in HNSW mode, including while the graph is still being built', async () => {
    const docs = makeDocs(150, 20, D);
    const index = new UserVectors(D, { exactThreshold: 100 });
    fill(index, docs);
    expect(index.mode).toBe('exact'); // 3000 vectors: the graph takes several batches, between event-loop turns
    // doc-0 sits in slots the graph already has, doc-140 in slots it has not reached yet.
    const removed = [docs[0], docs[140]];
    removed.forEach((doc) => index.remove(doc.docId));
    const added = makeDocs(2, 20, D).map((doc) => ({ ...doc, docId: `new-${doc.docId}` }));
    fill(index, added);
    await index.indexed();
    expect(index.mode).toBe('hnsw');
    expect(index.size).toBe(3000);

    for (const doc of removed) for (const vector of doc.vectors) expect(index.search(vector, 10).map((hit) => hit.docId)).not.toContain(doc.docId);
    for (const doc of added) doc.vectors.forEach((vector, chunk) => expect(index.search(vector, 1)[0]).toMatchObject({ docId: doc.docId, chunk }));

    // Once built, the same again.
    index.remove('doc-77');
    index.add('doc-77-again', [], 999, docs[77].vectors);
    expect(index.search(docs[77].vectors[5], 1)[0]).toMatchObject({ docId: 'doc-77-again', chunk: 5, score: expect.closeTo(1, 4) });
  });

  test('with tags, returns the top-k among documents carrying every tag, in both modes', async () => {
    // 3000 vectors; "rare": 3 documents (small: scanned exactly), "common": every other one (over-fetched from the graph).
    const docs = makeDocs(150, 20, D, (i) => [...(i % 50 === 7 ? ['rare'] : []), ...(i % 2 === 0 ? ['common'] : []), ...(i % 3 === 0 ? ['third'] : [])]);
    const exact = new UserVectors(D, { exactThreshold: 10_000 });
    const graph = new UserVectors(D, { exactThreshold: 500 });
    fill(exact, docs);
    fill(graph, docs);
    await graph.indexed();
    expect([exact.mode, graph.mode]).toEqual(['exact', 'hnsw']);
    const has =
      (...tags: string[]) =>
      (doc: TestDoc) =>
        tags.every((tag) => doc.tags.includes(tag));

    let commonRecall = 0;
    for (let q = 0; q < 20; q++) {
      const query = randomVector(D);
      for (const tags of [['rare'], ['common'], ['common', 'third'], ['rare', 'third']]) {
        const truth = reference(docs, query, 5, has(...tags));
        expect(exact.search(query, 5, tags).map(key)).toEqual(truth.map(key));
        const found = graph.search(query, 5, tags);
        expect(found.every((hit) => has(...tags)(docs.find((doc) => doc.docId === hit.docId)!))).toBe(true);
        if (tags.includes('common')) {
          expect(found).toHaveLength(5);
          commonRecall += recall(found, truth) / 40;
        } else {
          expect(found.map(key)).toEqual(truth.map(key));
        }
      }
    }
    expect(commonRecall).toBeGreaterThan(0.9);
    expect(graph.search(randomVector(D), 5, ['nobody-has-this'])).toEqual([]);
  });
});

/** A logger that keeps what it is told, for asserting on it. */
function recordingLogger(lines: string[] = []): Logger & { lines: string[] } {
  const write = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  const logger = { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error'), child: () => logger, lines };
  return logger;
}

async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function put(store: VectorStore, userId: string, docId: string, vectors: Float32Array[], tags: string[] = []): Promise<void> {
  await store.putVectors(docId, 0, vectors);
  await store.publish({ userId, docId, tags }, vectors.length);
}

const D = 8;
const finds = (index: VectorIndex, userId: string, docId: string, vector: Float32Array) => index.search(userId, vector, 3).some((hit) => hit.docId === docId);

describe('VectorIndex over a real Redis', () => {
  let server: TestRedis;
  let redis: Redis;
  const running: VectorIndex[] = [];

  beforeAll(async () => {
    server = await startTestRedis();
    redis = server.connect();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((index) => index.stop()));
  });
  afterAll(() => server.stop());

  async function replica(keyPrefix: string, connect = () => server.connect()): Promise<{ index: VectorIndex; store: VectorStore; log: ReturnType<typeof recordingLogger> }> {
    const store = new VectorStore(server.connect(), { keyPrefix });
    const log = recordingLogger();
    const index = new VectorIndex(store, { connect, log, exactThreshold: 16, blockMs: 200, retryMs: 50 });
    running.push(index);
    await index.start();
    return { index, store, log };
  }

  test('a change is searchable at once where it was made, reaches the other replica by the stream, and is applied once', async () => {
    const keyPrefix = `kb:test-${randomUUID()}:`;
    const a = await replica(keyPrefix);
    const b = await replica(keyPrefix);
    const vectors = randomVectors(3, D);

    await put(a.store, 'alice', 'doc-1', vectors, ['x']);
    await a.index.applyLocal({ op: 'add', userId: 'alice', docId: 'doc-1' });
    expect(a.index.search('alice', vectors[1], 1)).toEqual([{ docId: 'doc-1', chunk: 1, score: expect.closeTo(1, 5) }]);
    await eventually(() => finds(b.index, 'alice', 'doc-1', vectors[0]), 'replica B finds doc-1');
    expect(b.index.search('alice', vectors[2], 1, ['x'])).toEqual([{ docId: 'doc-1', chunk: 2, score: expect.closeTo(1, 5) }]);

    // The stream brought the change back to A too, and applying it again is a no-op.
    await a.index.applyLocal({ op: 'add', userId: 'alice', docId: 'doc-1' });
    expect([a.index.vectorCount('alice'), b.index.vectorCount('alice')]).toEqual([3, 3]);
    expect(a.index.stats()).toMatchObject({ users: 1, documents: 1, vectors: 3, rebuilds: 1 });

    await a.store.remove('alice', 'doc-1');
    await a.index.applyLocal({ op: 'delete', userId: 'alice', docId: 'doc-1' });
    expect(a.index.search('alice', vectors[0], 3)).toEqual([]);
    await eventually(() => b.index.vectorCount() === 0, 'replica B drops doc-1');
    expect(b.index.search('alice', vectors[0], 3)).toEqual([]);
  });

  test("a user's search never returns another user's chunks", async () => {
    const keyPrefix = `kb:test-${randomUUID()}:`;
    const { index, store } = await replica(keyPrefix);
    const shared = randomVectors(4, D);
    await put(store, 'alice', 'alice-doc', shared);
    await put(store, 'bob', 'bob-doc', shared);
    await put(store, 'bob', 'bob-big', randomVectors(40, D)); // bob above the threshold: his graph must not leak either
    for (const docId of ['alice-doc', 'bob-doc', 'bob-big']) await index.applyLocal({ op: 'add', userId: docId.startsWith('alice') ? 'alice' : 'bob', docId });

    for (const query of [...shared, ...randomVectors(10, D)]) {
      expect(new Set(index.search('alice', query, 10).map((hit) => hit.docId))).toEqual(new Set(['alice-doc']));
      expect(index.search('bob', query, 50).map((hit) => hit.docId)).not.toContain('alice-doc');
    }
    expect(index.search('carol', shared[0], 5)).toEqual([]);
    expect([index.vectorCount('alice'), index.vectorCount('bob'), index.vectorCount()]).toEqual([4, 44, 48]);
  });

  test('a replica started later rebuilds everything from Redis', async () => {
    const keyPrefix = `kb:test-${randomUUID()}:`;
    const { store } = await replica(keyPrefix);
    const docs = makeDocs(12, 3, D);
    for (const doc of docs) await put(store, doc.docId.endsWith('1') ? 'bob' : 'alice', doc.docId, doc.vectors);
    await store.remove('alice', 'doc-5');

    const late = await replica(keyPrefix);
    expect(late.index.stats()).toMatchObject({ documents: 11, vectors: 33 });
    expect(late.index.search('alice', docs[4].vectors[2], 1)[0]).toMatchObject({ docId: 'doc-4', chunk: 2 });
    expect(late.index.search('bob', docs[11].vectors[0], 1)[0]).toMatchObject({ docId: 'doc-11', chunk: 0 });
    expect(late.index.search('alice', docs[5].vectors[0], 5).map((hit) => hit.docId)).not.toContain('doc-5');
  });

  test('a replica that finds a gap in the change numbers (the stream was trimmed past it) rebuilds', async () => {
    const keyPrefix = `kb:test-${randomUUID()}:`;
    const follower = await replica(keyPrefix);
    // A change the stream does not carry, as if trimmed before the follower read it.
    const unseen = new VectorStore(redis, { keyPrefix, changeFeed: false });
    const [missed, next] = randomVectors(2, D);
    await put(unseen, 'alice', 'missed', [missed]);
    await put(follower.store, 'alice', 'next', [next]);

    await eventually(() => finds(follower.index, 'alice', 'missed', missed) && finds(follower.index, 'alice', 'next', next), 'the follower has both documents');
    expect(follower.index.stats().rebuilds).toBe(2);
    expect(follower.log.lines.some((line) => line.startsWith('warn vector index missed changes'))).toBe(true);
  });

  test('a replica whose connection was lost rebuilds', async () => {
    const keyPrefix = `kb:test-${randomUUID()}:`;
    let reader: Redis | undefined;
    const follower = await replica(keyPrefix, () => (reader = server.connect()));
    const unseen = new VectorStore(redis, { keyPrefix, changeFeed: false });
    const vector = randomVector(D);
    await put(unseen, 'alice', 'while-away', [vector]);
    expect(finds(follower.index, 'alice', 'while-away', vector)).toBe(false);

    reader!.disconnect(true);
    await eventually(() => finds(follower.index, 'alice', 'while-away', vector), 'the follower rebuilt after reconnecting');
    expect(follower.index.stats().rebuilds).toBeGreaterThanOrEqual(2);
  });
});

describe('VectorIndex over the in-memory Redis', () => {
  const log = recordingLogger();
  const redis = connectRedis('memory://', log);
  afterAll(() => redis.disconnect());

  test('follows no stream, applies local changes directly, and rebuilds from the store at start', async () => {
    const keyPrefix = `kb:test-${randomUUID()}:`;
    const store = new VectorStore(redis, { keyPrefix });
    const connect = jest.fn(() => connectRedis('memory://', log));
    const index = new VectorIndex(store, { connect, log, exactThreshold: 4 });
    await index.start();
    expect(connect).not.toHaveBeenCalled();
    expect(log.lines.some((line) => line.startsWith('info vector index: no change stream on the in-memory Redis'))).toBe(true);

    const vectors = randomVectors(6, D);
    await put(store, 'alice', 'doc-1', vectors, ['t']);
    await index.applyLocal({ op: 'add', userId: 'alice', docId: 'doc-1' });
    expect(index.search('alice', vectors[4], 1, ['t'])).toEqual([{ docId: 'doc-1', chunk: 4, score: expect.closeTo(1, 5) }]);

    const restarted = new VectorIndex(store, { connect, log });
    await restarted.start();
    expect(restarted.vectorCount('alice')).toBe(6);

    await store.remove('alice', 'doc-1');
    await index.applyLocal({ op: 'delete', userId: 'alice', docId: 'doc-1' });
    expect(index.search('alice', vectors[4], 1)).toEqual([]);
    await Promise.all([index.stop(), restarted.stop()]);
  });

  test('a delete made while an add is still reading Redis wins', async () => {
    const store = new VectorStore(redis, { keyPrefix: `kb:test-${randomUUID()}:` });
    const index = new VectorIndex(store, { connect: () => redis, log });
    await index.start();
    const vectors = randomVectors(2, D);
    await put(store, 'alice', 'doc-1', vectors);
    const adding = index.applyLocal({ op: 'add', userId: 'alice', docId: 'doc-1' });
    await index.applyLocal({ op: 'delete', userId: 'alice', docId: 'doc-1' });
    await adding;
    expect(index.vectorCount()).toBe(0);
    await index.stop();
  });
});
