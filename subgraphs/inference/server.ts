import path from 'node:path';
import { BillingClient } from '../../lib/billing-client';
import { ConfigError, envBool, envInt, envString } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis, REDIS_FAILOVER_WAIT_MS } from '../../lib/redis';
import { type RunningService, type ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { BatchGenerator } from './completions/batch-generator';
import { Completions } from './completions/completions';
import { EmbeddingBatcher } from './embeddings/embedding-batcher';
import { Embeddings } from './embeddings/embeddings';
import { parseEndpointList } from './gpu-tier/endpoint-list';
import { metricsRoute } from './gpu-tier/endpoint-metrics';
import { GpuTier } from './gpu-tier/gpu-tier';
import { ModelCatalog } from './models/model-catalog';
import { Metering, type ResponseCacheBilling } from './billing/usage-billing';
import { parsePriorityByScope } from './gpu-tier/priority';
import { IdempotencyStore } from './completions/idempotency-store';
import { ResumableStreams } from './completions/resumable-streams';
import { StreamRecordStore } from './completions/stream-record-store';
import { IdempotentCompletions } from './completions/idempotent-completions';
import { ResponseCache } from './completions/response-cache';
import { type InferenceContext, resolvers } from './resolvers';
import { UsagePublisher } from './billing/usage-publisher';

/** `INFERENCE_GPU_ENDPOINTS` (comma-separated host:port or `dns:///name:port`), else `INFERENCE_GPU_ENDPOINT`. */
export function gpuEndpoints(): string[] {
  return parseEndpointList(envString('INFERENCE_GPU_ENDPOINTS', envString('INFERENCE_GPU_ENDPOINT', '127.0.0.1:8001')));
}

/**
 * Billing's base URL: `INFERENCE_BILLING_URL`, else the origin of
 * `SLUICE_SUBGRAPH_BILLING_URL` (which the gateway uses too, so a stack that
 * places billing needs no second variable), else http://127.0.0.1:4002.
 */
export function billingBaseUrl(): string {
  const explicit = envString('INFERENCE_BILLING_URL');
  if (explicit) return explicit;
  const subgraph = envString('SLUICE_SUBGRAPH_BILLING_URL');
  return subgraph ? new URL(subgraph).origin : 'http://127.0.0.1:4002';
}

function responseCacheBilling(value: string): ResponseCacheBilling {
  if (value === 'free' || value === 'cache-hit') return value;
  throw new ConfigError(`INFERENCE_RESPONSE_CACHE_BILLING expects free or cache-hit, but got ${JSON.stringify(value)}`);
}

/** How long shutdown waits for usage events still being published. */
const USAGE_DRAIN_MS = 10_000;

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
    endpointsFile: envString('INFERENCE_GPU_ENDPOINTS_FILE'),
    endpointsFilePollMs: envInt('INFERENCE_GPU_ENDPOINTS_FILE_POLL_MS', 2_000, { min: 100 }),
    dnsRefreshMs: envInt('INFERENCE_GPU_DNS_REFRESH_MS', 5_000, { min: 100 }),
    affinityMargin: envInt('INFERENCE_GPU_AFFINITY_MARGIN', 4, { min: 0 }),
  });
  // SIGHUP re-reads the endpoint list file and re-resolves its DNS targets at once, as servers conventionally reload on it.
  const onHangUp = () => tier.reloadEndpoints();
  process.on('SIGHUP', onHangUp);
  const priorities = parsePriorityByScope(envString('INFERENCE_PRIORITY_BY_SCOPE', ''));
  const catalog = new ModelCatalog(tier, envInt('INFERENCE_MODEL_CACHE_MS', 5_000));
  const windowMs = envInt('INFERENCE_BATCH_WINDOW_MS', 2);
  const embedder = new EmbeddingBatcher(tier, windowMs);
  // Billing rides through a Redis failover (lib/redis.ts) before it answers: waiting less would refuse the completion anyway.
  const billing = new BillingClient({ baseUrl: billingBaseUrl(), timeoutMs: envInt('INFERENCE_BILLING_TIMEOUT_MS', REDIS_FAILOVER_WAIT_MS + 2_000, { min: 1 }) });
  const metering = new Metering(billing, new UsagePublisher(redis, { log: config.log, attempts: envInt('INFERENCE_USAGE_PUBLISH_ATTEMPTS', 10, { min: 1 }) }), config.log);
  const embeddings = new Embeddings(catalog, embedder, { maxTexts: 2048, maxTextChars: 32_768 }, priorities, metering);
  const generationDeadlineMs = envInt('INFERENCE_GENERATION_DEADLINE_MS', 300_000, { min: 1 });
  const completions = new Completions(catalog, tier, new BatchGenerator(tier, windowMs, generationDeadlineMs), metering, {
    limits: { maxMessages: 256, maxPromptChars: 200_000, defaultMaxTokens: 256 },
    streamDeadlineMs: generationDeadlineMs,
    priorities,
    responseCache: new ResponseCache(redis, {
      ttlSeconds: envInt('INFERENCE_RESPONSE_CACHE_TTL_SECONDS', 86_400, { min: 1 }),
      shared: envBool('INFERENCE_RESPONSE_CACHE_SHARED', false),
      maxTextChars: 200_000,
    }),
    responseCacheBilling: responseCacheBilling(envString('INFERENCE_RESPONSE_CACHE_BILLING', 'cache-hit')),
    log: config.log,
  });
  // Above REDIS_FAILOVER_WAIT_MS: a live runner cut off from Redis by a failover keeps its key, and nothing runs twice
  // (which would cost GPU time, not money: idempotency-store.ts); short enough that a lost runner's key frees soon.
  const leaseMs = envInt('INFERENCE_IDEMPOTENCY_LEASE_MS', 15_000, { min: 300 });
  const idempotency = new IdempotencyStore(redis, {
    ttlMs: envInt('INFERENCE_IDEMPOTENCY_TTL_SECONDS', 86_400, { min: Math.ceil(leaseMs / 1000) }) * 1000,
    leaseMs,
  });
  // Under the gateway's subgraph deadline (30 s by default), so a waiting retry gets CONFLICT rather than a timeout.
  const idempotentCompletions = new IdempotentCompletions(completions, idempotency, { waitMs: envInt('INFERENCE_IDEMPOTENCY_WAIT_MS', 20_000, { min: 0 }), log: config.log });
  // At least a generation's deadline: a run never outlives its stream's record, so it always settles against the mark.
  const streamTtlMs = envInt('INFERENCE_STREAM_RESUME_TTL_SECONDS', 3_600, { min: Math.ceil(generationDeadlineMs / 1000) }) * 1000;
  const resumableStreams = new ResumableStreams(completions, new StreamRecordStore(redis, streamTtlMs));
  config.log.info('GPU tier', { endpoints: tier.endpoints.map((e) => e.address) });
  return startSubgraph<InferenceContext>({
    name: 'inference',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, catalog, embeddings, completions, idempotentCompletions, resumableStreams, tier }),
    checks: { gpu: () => tier.isReady() },
    routes: metricsRoute(tier),
    onStop: async () => {
      process.off('SIGHUP', onHangUp);
      // Usage events of ended requests may still be retrying: give them their chance before Redis is let go.
      tier.close();
      if (!(await metering.drain(USAGE_DRAIN_MS))) config.log.error('usage events were still unpublished at shutdown; their reservations will expire unbilled');
      billing.close();
    },
  });
}
