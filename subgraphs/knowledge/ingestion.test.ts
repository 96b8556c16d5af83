import type Redis from 'ioredis';
import { codedError, ErrorCode } from '../../lib/errors';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { DocumentStore } from './document-store';
import type { ModelSummary } from './inference-client';
import { IngestionFeed, type IngestionState } from './ingestion-feed';
import { Ingestion } from './ingestion';
import type { ModelChoice } from './model-choice';
import { VectorIndex } from './vector-index';
import { VectorStore } from './vector-store';

const log = createLogger({ service: 'test' });
const MODEL: ModelSummary = { id: 'embed', kind: 'EMBEDDING', ready: true, maxBatchSize: 4, contextLength: null };

/** Embeds through a stand-in for the inference service: one call per group, with hooks to fail or pause it. */
class FakeModels {
  calls: number[] = [];
  onCall: (call: number) => Promise<void> | void = () => undefined;
  async current() {
    return MODEL;
  }
  async embed(_header: string, _model: ModelSummary, texts: readonly string[]) {
    this.calls.push(texts.length);
    await this.onCall(this.calls.length);
    return texts.map((_, i) => Float32Array.from({ length: 8 }, (__, d) => (d === i % 8 ? 1 : 0)));
  }
}

let redis: Redis;
let store: DocumentStore;
let feed: IngestionFeed;
let index: VectorIndex;
let models: FakeModels;
let ingestion: Ingestion;
let states: IngestionState[];

/** A Markdown document of `sections` sections, each its own chunk at 160 tokens. */
const documentOf = (sections: number) => Array.from({ length: sections }, (_, i) => `# Part ${i}\n\nParagraph number ${i} of the manual.`).join('\n\n');

beforeEach(async () => {
  redis = connectRedis('memory://', log);
  await redis.flushall();
  store = new DocumentStore(redis);
  const vectors = new VectorStore(redis);
  index = new VectorIndex(vectors, { connect: () => connectRedis('memory://', log), log });
  await index.start();
  feed = new IngestionFeed(redis, connectRedis('memory://', log));
  models = new FakeModels();
  ingestion = new Ingestion(
    { store, vectors, index, feed, models: models as unknown as ModelChoice, log },
    { chunking: { maxTokens: 160, overlapTokens: 16 }, concurrency: 1, groupSize: 0, leaseMs: 60_000 },
  );
});

afterEach(async () => {
  await index.stop();
  feed.close();
  redis.disconnect();
});

async function add(sections: number) {
  const doc = await store.add('u1', 'Manual', documentOf(sections), [], Date.now() + 60_000);
  states = [];
  await feed.listen(doc.id, (state) => states.push(state));
  return doc;
}

describe('Ingestion', () => {
  it('embeds in groups of the max batch size, reporting progress after each, then READY and searchable', async () => {
    const doc = await add(10);
    await ingestion.start(doc, 'identity');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(models.calls).toEqual([4, 4, 2]);
    expect(states.map((s) => [s.status, s.embeddedChunks, s.totalChunks])).toEqual([
      ['INGESTING', 0, 10],
      ['INGESTING', 4, 10],
      ['INGESTING', 8, 10],
      ['INGESTING', 10, 10],
      ['READY', 10, 10],
    ]);
    expect(await store.get('u1', doc.id)).toMatchObject({ status: 'READY', chunkCount: 10, embeddedChunks: 10 });
    expect(index.search('u1', Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]), 3).map((hit) => hit.docId)).toEqual([doc.id, doc.id, doc.id]);
  });

  it('records a failed embedding call as FAILED with the reason, and leaves nothing searchable', async () => {
    models.onCall = (call) => {
      if (call === 2) throw codedError(ErrorCode.GpuUnavailable, 'the GPU tier could not serve the request');
    };
    const doc = await add(10);
    await ingestion.start(doc, 'identity');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store.get('u1', doc.id)).toMatchObject({ status: 'FAILED', failureReason: 'GPU_UNAVAILABLE: the GPU tier could not serve the request', embeddedChunks: 4 });
    expect(states[states.length - 1]).toMatchObject({ status: 'FAILED', reason: 'GPU_UNAVAILABLE: the GPU tier could not serve the request' });
    expect(index.search('u1', Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]), 3)).toEqual([]);
  });

  it('stops writing when the document is deleted mid-way, and never makes it searchable', async () => {
    const doc = await add(10);
    models.onCall = async (call) => {
      if (call === 2) await store.delete('u1', doc.id);
    };
    await ingestion.start(doc, 'identity');
    expect(models.calls).toEqual([4, 4]);
    expect(await store.get('u1', doc.id)).toBeNull();
    expect(index.search('u1', Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]), 3)).toEqual([]);
    expect(states.some((s) => s.status === 'READY')).toBe(false);
  });

  it('marks an ingestion whose lease ran out (its replica died) FAILED, and leaves live ones alone', async () => {
    const dead = await store.add('u1', 'Orphan', documentOf(2), [], Date.now() - 1);
    const live = await store.add('u1', 'Live', documentOf(2), [], Date.now() + 60_000);
    expect(await ingestion.sweep()).toBe(1);
    expect(await store.get('u1', dead.id)).toMatchObject({ status: 'FAILED', failureReason: expect.stringMatching(/interrupted/) });
    expect(await store.get('u1', live.id)).toMatchObject({ status: 'INGESTING' });
  });
});
