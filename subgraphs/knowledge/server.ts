import path from 'node:path';
import { DEFAULT_PORTS, envInt, envNumber, envString } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis } from '../../lib/redis';
import { type RunningService, type ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { Answers } from './answers';
import { DocumentStore } from './document-store';
import { Documents } from './documents';
import { InferenceClient } from './inference-client';
import { IngestionFeed } from './ingestion-feed';
import { Ingestion } from './ingestion';
import { ModelChoice } from './model-choice';
import { type KnowledgeContext, resolvers } from './resolvers';
import { Retrieval } from './retrieval';
import { VectorIndex } from './vector-index';
import { VectorStore } from './vector-store';

export async function startKnowledge(config: ServiceConfig): Promise<RunningService> {
  const { log } = config;
  const redis = connectRedis(config.redisUrl, log);
  const store = new DocumentStore(redis);
  const vectors = new VectorStore(redis);
  const index = new VectorIndex(vectors, {
    connect: () => connectRedis(config.redisUrl, log),
    exactThreshold: envInt('KNOWLEDGE_EXACT_SEARCH_MAX_VECTORS', 2048, { min: 0 }),
    log,
  });
  await index.start();
  const feed = new IngestionFeed(redis, connectRedis(config.redisUrl, log));
  const inference = new InferenceClient(envString('SLUICE_SUBGRAPH_INFERENCE_URL', `http://127.0.0.1:${DEFAULT_PORTS.inference}/graphql`));
  const models = new ModelChoice(inference, { embedding: envString('KNOWLEDGE_EMBEDDING_MODEL'), cacheMs: envInt('KNOWLEDGE_MODEL_CACHE_MS', 5_000) });
  const leaseMs = envInt('KNOWLEDGE_INGESTION_LEASE_MS', 60_000, { min: 1_000 });
  const maxTokens = envInt('KNOWLEDGE_CHUNK_TOKENS', 160, { min: 16, max: 256 });
  const ingestion = new Ingestion(
    { store, vectors, index, feed, models, log },
    {
      chunking: { maxTokens, overlapTokens: envInt('KNOWLEDGE_CHUNK_OVERLAP_TOKENS', 24, { min: 0, max: maxTokens - 1 }) },
      concurrency: envInt('KNOWLEDGE_EMBED_CONCURRENCY', 2, { min: 1, max: 64 }),
      groupSize: envInt('KNOWLEDGE_EMBED_GROUP_SIZE', 0, { min: 0, max: 2048 }),
      leaseMs,
    },
  );
  const documents = new Documents(
    { store, vectors, index, ingestion, feed },
    {
      maxTitleChars: 200,
      maxContentBytes: envInt('KNOWLEDGE_MAX_DOCUMENT_BYTES', 512 * 1024, { min: 1 }),
      maxPage: 100,
      maxTags: 16,
      maxTagChars: 64,
      ingestionLeaseMs: leaseMs,
    },
  );
  const retrieval = new Retrieval(store, index, models, { maxK: 50, maxQueryChars: 4_000, maxTags: 16 });
  const answers = new Answers(retrieval, inference, models, {
    minScore: envNumber('KNOWLEDGE_MIN_SCORE', 0.15, { min: -1, max: 1 }),
    defaultMaxTokens: envInt('KNOWLEDGE_ANSWER_MAX_TOKENS', 200, { min: 1 }),
    promptTokenMarginPercent: envInt('KNOWLEDGE_PROMPT_TOKEN_MARGIN_PERCENT', 150, { min: 100, max: 1_000 }),
    fallbackContextLength: 4_096,
  });
  // Any replica notices ingestions whose replica died (their lease ran out) and records them as FAILED.
  const sweeper = setInterval(
    () => {
      ingestion.sweep().catch((error: unknown) => log.warn('ingestion sweep failed', { error: String(error) }));
    },
    Math.min(leaseMs, 10_000),
  );
  sweeper.unref();
  return startSubgraph<KnowledgeContext>({
    name: 'knowledge',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, documents, retrieval, answers }),
    onStop: async () => {
      clearInterval(sweeper);
      await ingestion.stop();
      await index.stop();
      feed.close();
    },
  });
}
