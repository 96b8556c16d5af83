import path from 'node:path';
import { envInt, envString } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis } from '../../lib/redis';
import { RunningService, ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { BatchGenerator } from './batch-generator';
import { Completions } from './completions';
import { Embedder } from './embedder';
import { Embeddings } from './embeddings';
import { GpuTier } from './gpu-tier';
import { ModelCatalog } from './model-catalog';
import { InferenceContext, resolvers } from './resolvers';

/** `INFERENCE_GPU_ENDPOINTS` (comma-separated host:port), else `INFERENCE_GPU_ENDPOINT`. */
export function gpuEndpoints(): string[] {
  const list = envString('INFERENCE_GPU_ENDPOINTS', envString('INFERENCE_GPU_ENDPOINT', '127.0.0.1:8001'));
  return list
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
}

export async function startInference(config: ServiceConfig): Promise<RunningService> {
  const redis = connectRedis(config.redisUrl, config.log);
  const deadlineMs = envInt('INFERENCE_GPU_DEADLINE_MS', 30_000, { min: 1 });
  const tier = new GpuTier({
    endpoints: gpuEndpoints(),
    deadlineMs,
    log: config.log,
    probeIntervalMs: envInt('INFERENCE_GPU_PROBE_MS', 2_000, { min: 100 }),
    failureThreshold: envInt('INFERENCE_GPU_BREAKER_FAILURES', 5, { min: 1 }),
    cooldownMs: envInt('INFERENCE_GPU_BREAKER_COOLDOWN_MS', 5_000, { min: 100 }),
  });
  const catalog = new ModelCatalog(tier, envInt('INFERENCE_MODEL_CACHE_MS', 5_000));
  const windowMs = envInt('INFERENCE_BATCH_WINDOW_MS', 2);
  const embedder = new Embedder(tier, windowMs);
  const embeddings = new Embeddings(catalog, embedder, { maxTexts: 2048, maxTextChars: 32_768 });
  const completions = new Completions(catalog, tier, new BatchGenerator(tier, windowMs, envInt('INFERENCE_GENERATION_DEADLINE_MS', 300_000, { min: 1 })), {
    limits: { maxMessages: 256, maxPromptChars: 200_000, defaultMaxTokens: 256 },
    streamDeadlineMs: envInt('INFERENCE_GENERATION_DEADLINE_MS', 300_000, { min: 1 }),
  });
  config.log.info('GPU tier', { endpoints: tier.endpoints.map((e) => e.address) });
  return startSubgraph<InferenceContext>({
    name: 'inference',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, catalog, embeddings, completions }),
    checks: { gpu: () => tier.isReady() },
    onStop: async () => tier.close(),
  });
}
