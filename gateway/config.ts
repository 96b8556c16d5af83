/**
 * Every setting of the gateway, read and checked once, at start: a wrong
 * value stops the process with a message naming the variable, what it
 * expects and what it got. Each feature owns its options type; this composes
 * them. (The subgraph calls' settings are read per subgraph by
 * `subgraph-calls/settings.ts`; the identity key by `lib/identity.ts`.)
 */
import { Env, type EnvSource } from '../lib/config';
import { demandControlFromEnv, type DemandControlOptions } from './demand-control/cost';
import { dedupSettingsFromEnv, type DedupSettings } from './dedup/settings';
import { type PlanExecutor, planExecutorFromEnv } from './plan-executor/settings';
import { OPENAI_OPERATIONS } from './openai/operations';
import { openAiFromEnv, type OpenAiOptions } from './openai/options';
import { operationLimitsFromEnv, type OperationLimits } from './operation-limits/limits';
import { apqSettingsFromEnv, type ApqSettings } from './persisted-queries/apq';
import { safelistFromEnv, type Safelist } from './persisted-queries/safelist';
import { rateLimitsFromEnv } from './rate-limits/config';
import type { RateLimiterOptions } from './rate-limits/limiter';
import { responseCacheFromEnv, type ResponseCacheOptions } from './response-cache/feature';

export interface AuthConfig {
  /** Where the auth service publishes its session-token keys (GATEWAY_AUTH_JWKS_URL). @default http://127.0.0.1:4001/.well-known/jwks.json */
  jwksUrl: string;
  /** The auth service, which verifies API keys and revocations (GATEWAY_AUTH_URL). @default http://127.0.0.1:4001 */
  authUrl: string;
  /** How long a verified credential is trusted before it is checked again, in ms; also how often open WebSockets are re-checked, at least 1 s (GATEWAY_CREDENTIALS_CACHE_MS). @default 10000 */
  credentialsCacheMs: number;
  /**
   * While auth cannot be asked (unreachable, timed out, its breaker open, or answering 503 because its store is down),
   * the last answer for a credential is used until it is this many ms past its expiry; 0 never uses an expired answer
   * (GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS). @default 300000
   */
  credentialsStaleIfErrorMs: number;
  /** Lifetime of a signed identity sent to subgraphs, in seconds (GATEWAY_IDENTITY_TTL_SECONDS). @default 60 */
  identityTtlSeconds: number;
  /** Take the caller's address from X-Forwarded-For: only behind a proxy that is the gateway's sole entrance (GATEWAY_TRUST_PROXY). @default false */
  trustProxy: boolean;
}

export interface HttpConfig {
  /** Largest request body, in bytes, as Apollo Router's `http_max_request_bytes`: a body is held whole and parsed (GATEWAY_BODY_LIMIT_BYTES). @default 2097152 */
  bodyLimitBytes: number;
  /** Serve Apollo Sandbox on GET /graphql (GATEWAY_SANDBOX). @default true */
  sandbox: boolean;
  /** Answer introspection queries (GATEWAY_INTROSPECTION). @default true */
  introspection: boolean;
}

export interface SubscriptionsConfig {
  /** Live subscriptions one WebSocket (or one multipart request) may hold (GATEWAY_SUBSCRIPTIONS_PER_CONNECTION). @default 16 */
  perConnection: number;
  /** Interval of the `{}` heartbeat parts of a multipart subscription, in ms (GATEWAY_MULTIPART_HEARTBEAT_MS). @default 5000 */
  multipartHeartbeatMs: number;
  /** Interval of WebSocket pings, in ms; a client that misses a pong is dropped (GATEWAY_WS_KEEPALIVE_MS). @default 12000 */
  wsKeepAliveMs: number;
}

export interface MetricsConfig {
  /** Serve Prometheus metrics on /metrics (GATEWAY_METRICS). @default true */
  enabled: boolean;
  /** Bearer token /metrics requires; none when unset (GATEWAY_METRICS_TOKEN). @default unset */
  token: string | undefined;
}

export interface GatewayConfig {
  auth: AuthConfig;
  http: HttpConfig;
  subscriptions: SubscriptionsConfig;
  metrics: MetricsConfig;
  operationLimits: OperationLimits;
  /** Enforced on a graph that declares `@cost`/`@listSize` or when GATEWAY_MAX_COST is set; else only measured (demand-control/README.md). */
  demandControl: DemandControlOptions;
  rateLimits: RateLimiterOptions;
  /** Automatic persisted queries; undefined when GATEWAY_APQ is off. */
  apq: ApqSettings | undefined;
  /** Safelist mode's manifest, read and checked; undefined when GATEWAY_SAFELIST is off (the default). */
  safelist: Safelist | undefined;
  /** The response cache; undefined when GATEWAY_RESPONSE_CACHE is off. */
  responseCache: ResponseCacheOptions | undefined;
  dedup: DedupSettings;
  /** Which executor runs query plans (GATEWAY_PLAN_EXECUTOR: compiled, stock; plan-executor/README.md). @default 'compiled' */
  planExecutor: PlanExecutor;
  /** The OpenAI-compatible API on /v1; undefined when GATEWAY_OPENAI is off. */
  openai: OpenAiOptions | undefined;
}

export function gatewayConfigFromEnv(source: EnvSource = process.env): GatewayConfig {
  const env = new Env(source);
  const openai = openAiFromEnv(env);
  return {
    auth: {
      jwksUrl: env.string('GATEWAY_AUTH_JWKS_URL', 'http://127.0.0.1:4001/.well-known/jwks.json'),
      authUrl: env.string('GATEWAY_AUTH_URL', 'http://127.0.0.1:4001'),
      credentialsCacheMs: env.int('GATEWAY_CREDENTIALS_CACHE_MS', 10_000),
      credentialsStaleIfErrorMs: env.int('GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS', 300_000),
      identityTtlSeconds: env.int('GATEWAY_IDENTITY_TTL_SECONDS', 60, { min: 5 }),
      trustProxy: env.bool('GATEWAY_TRUST_PROXY', false),
    },
    http: {
      bodyLimitBytes: env.int('GATEWAY_BODY_LIMIT_BYTES', 2 * 1024 * 1024, { min: 1024 }),
      sandbox: env.bool('GATEWAY_SANDBOX', true),
      introspection: env.bool('GATEWAY_INTROSPECTION', true),
    },
    subscriptions: {
      perConnection: env.int('GATEWAY_SUBSCRIPTIONS_PER_CONNECTION', 16, { min: 1 }),
      multipartHeartbeatMs: env.int('GATEWAY_MULTIPART_HEARTBEAT_MS', 5_000, { min: 100 }),
      wsKeepAliveMs: env.int('GATEWAY_WS_KEEPALIVE_MS', 12_000, { min: 1_000 }),
    },
    metrics: {
      enabled: env.bool('GATEWAY_METRICS', true),
      token: env.string('GATEWAY_METRICS_TOKEN'),
    },
    operationLimits: operationLimitsFromEnv(env),
    demandControl: demandControlFromEnv(env),
    rateLimits: rateLimitsFromEnv(env),
    apq: apqSettingsFromEnv(env),
    // The /v1 door's fixed operations are always in the safelist: they are the project's own.
    safelist: safelistFromEnv(env, openai ? OPENAI_OPERATIONS : []),
    responseCache: responseCacheFromEnv(env),
    dedup: dedupSettingsFromEnv(env),
    planExecutor: planExecutorFromEnv(env),
    openai,
  };
}
