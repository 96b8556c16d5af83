import path from 'node:path';
import { envInt, envString } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis } from '../../lib/redis';
import { RunningService, ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { Embedder } from './embedder';
import { Embeddings } from './embeddings';
import { ModelCatalog } from './model-catalog';
import { InferenceContext, resolvers } from './resolvers';
import { TritonClient } from './triton-client';

export async function startInference(config: ServiceConfig): Promise<RunningService> {
  const redis = connectRedis(config.redisUrl, config.log);
  const endpoint = envString('INFERENCE_GPU_ENDPOINT', '127.0.0.1:8001');
  const triton = new TritonClient(endpoint, envInt('INFERENCE_GPU_DEADLINE_MS', 30_000, { min: 1 }));
  const catalog = new ModelCatalog(triton, envInt('INFERENCE_MODEL_CACHE_MS', 5_000));
  const embedder = new Embedder(triton, envInt('INFERENCE_BATCH_WINDOW_MS', 2));
  const embeddings = new Embeddings(catalog, embedder, { maxTexts: 2048, maxTextChars: 32_768 });
  config.log.info('GPU tier', { endpoint });
  return startSubgraph<InferenceContext>({
    name: 'inference',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, catalog, embeddings }),
    checks: { gpu: async () => (await triton.serverReady()).ready },
    onStop: async () => triton.close(),
  });
}
