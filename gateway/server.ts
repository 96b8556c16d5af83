import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ApolloGateway, type ServiceMap } from '@apollo/gateway';
import { ApolloServer, ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { apolloHttpHandler, ContextError } from '../lib/apollo-http';
import { envBool, envInt, envString } from '../lib/config';
import { ErrorCode } from '../lib/errors';
import { HttpService } from '../lib/http-service';
import { IdentitySigner, identitySignerFromEnv } from '../lib/identity';
import { connectRedis, redisIsReady } from '../lib/redis';
import { traceContextFor } from '../lib/trace-context';
import type { RunningService, ServiceConfig } from '../lib/subgraph-service';
import { AuthenticationError, Authenticator, KeysUnavailableError } from './auth/authenticate';
import { authorizationPlugin } from './auth/authorization/apollo-plugin';
import { AuthorizationPolicy } from './auth/authorization/policy';
import { supergraphForGateway } from './auth/authorization/gateway-supergraph';
import { SignedIdentity, type GatewayContext } from './auth/context';
import { clientIp } from './auth/credentials/client-ip';
import { joinClusterMetrics } from './metrics/cluster-metrics';
import { gatewayMetrics } from './metrics/gateway-metrics';
import { metricsEndpoint, observeHttp } from './metrics/metrics-endpoint';
import { operationMetricsPlugin } from './metrics/operation-metrics-plugin';
import { observeSubgraphFetches } from './metrics/subgraph-fetches';
import { SignedIdentityDataSource } from './auth/identity-data-source';
import { FetchDedup } from './dedup/fetch-dedup';
import { deduplicatingGateway, OperationDedup } from './dedup/operation-dedup';
import { PublicOperations } from './dedup/public-operations';
import { dedupSettingsFromEnv } from './dedup/settings';
import { subgraphCallSettingsFromEnv } from './subgraph-calls/settings';
import { SubgraphClients } from './subgraph-calls/subgraph-client';
import { costDirectivesFromSupergraph, demandControlFromEnv, demandControlPlugin } from './demand-control/cost';
import { operationLimitsFromEnv, operationLimitsPlugin, refuseOversizedSource } from './operation-limits/limits';
import { persistedQueriesFromEnv } from './persisted-queries/apq';
import { rateLimitPlugin } from './rate-limits/apollo-plugin';
import { rateLimitsFromEnv } from './rate-limits/config';
import { RateLimiter } from './rate-limits/limiter';
import { SubscriptionGate } from './rate-limits/subscription-gate';
import { UsageMeter } from './rate-limits/token-charge-correction';
import { refuseUnlisted } from './persisted-queries/http';
import { safelistFromEnv } from './persisted-queries/safelist';
import { responseCacheFromEnv, responseCachePlugin } from './response-cache/plugin';
import { ResponseCacheStore } from './response-cache/store';
import { serveMultipartSubscription, wantsMultipartSubscription } from './subscriptions/multipart-transport';
import { SubscriptionPlanner } from './subscriptions/planner';
import { SubscriptionService } from './subscriptions/subscription-service';
import { ConnectionRefused, serveGatewayWs } from './subscriptions/ws-transport';
import { composeSupergraph, readSupergraphConfig, subgraphUrlOverride } from './supergraph';

export type { GatewayContext };

export interface GatewayOptions {
  /** Compose from this rover-format config... */
  supergraphConfig?: string;
  /** ...or serve this ready supergraph SDL file. */
  supergraphFile?: string;
}

export async function startGateway(config: ServiceConfig, options: GatewayOptions): Promise<RunningService> {
  const { log } = config;
  const supergraphSdl = options.supergraphFile
    ? readFileSync(options.supergraphFile, 'utf8')
    : composeSupergraph(readSupergraphConfig(options.supergraphConfig as string));
  // Shared state of every gateway process and replica (rate limits, persisted queries, caches) lives here, under `gw:`.
  const redis = connectRedis(config.redisUrl, log);
  const signer: IdentitySigner = identitySignerFromEnv(envInt('GATEWAY_IDENTITY_TTL_SECONDS', 60, { min: 5 }));
  const credentialsCacheMs = envInt('GATEWAY_CREDENTIALS_CACHE_MS', 10_000);
  const authenticator = new Authenticator({
    jwksUrl: envString('GATEWAY_AUTH_JWKS_URL', 'http://127.0.0.1:4001/.well-known/jwks.json'),
    authUrl: envString('GATEWAY_AUTH_URL', 'http://127.0.0.1:4001'),
    signer,
    cacheMs: credentialsCacheMs,
  });
  // Only behind a proxy that is the gateway's sole entrance: see clientIp.
  const trustProxy = envBool('GATEWAY_TRUST_PROXY', false);
  // Requests, completion tokens and live streams per caller, shared by every gateway process through Redis (gateway/rate-limits).
  const rateLimits = rateLimitsFromEnv();
  const rateLimiter = new RateLimiter(redis, rateLimits, log, { onRefusal: (scope, kind) => gatewayMetrics.recordRateLimitRefusal(scope, kind) });
  const usageMeter = new UsageMeter();

  // Keep-alive pools, timeouts, retries and circuit breakers, one set per subgraph (gateway/subgraph-calls).
  const dedup = dedupSettingsFromEnv();
  const subgraphClients = new SubgraphClients(subgraphCallSettingsFromEnv(), { dedup: dedup.enabled ? new FetchDedup() : undefined });
  const dataSourceFor = (name: string, url: string | undefined) => {
    if (!url) throw new Error(`subgraph "${name}" has no routing URL in the supergraph: expected one there or in SLUICE_SUBGRAPH_<NAME>_URL`);
    return new SignedIdentityDataSource(name, url, subgraphClients.for(name, url));
  };
  const gateway = new ApolloGateway({
    supergraphSdl: supergraphForGateway(supergraphSdl),
    // Metered: a completion's real token usage corrects its rate-limit charge.
    buildService: ({ name, url }) => usageMeter.meter(observeSubgraphFetches(name, dataSourceFor(name, subgraphUrlOverride(name) ?? url), gatewayMetrics)),
  });
  const sandbox = envBool('GATEWAY_SANDBOX', true);
  // @authenticated/@requiresScopes, enforced on every operation before it is planned (gateway/authorization).
  const authorization = AuthorizationPolicy.fromSupergraph(supergraphSdl);
  const limits = operationLimitsFromEnv();
  const demand = { directives: costDirectivesFromSupergraph(supergraphSdl), options: demandControlFromEnv() };
  const safelist = safelistFromEnv();
  const responseCache = responseCacheFromEnv();
  const plugins: ApolloServerPlugin<GatewayContext>[] = [
    operationLimitsPlugin(limits),
    demandControlPlugin(demand.directives, demand.options),
    authorizationPlugin(authorization),
    rateLimitPlugin(rateLimiter, usageMeter),
    // After authorization: entries are keyed by the document the caller may run.
    ...(responseCache ? [responseCachePlugin(new ResponseCacheStore(redis, (operation, error) => log.warn('response cache unavailable', { operation, error: error.message })), responseCache)] : []),
    sandbox ? ApolloServerPluginLandingPageLocalDefault({ embed: true, footer: false }) : ApolloServerPluginLandingPageDisabled(),
    // Last: willSendResponse hooks run in order, and the outcome recorded must include the errors the others add.
    // (Every requestDidStart runs when the request starts, so its clock still starts first.)
    operationMetricsPlugin(gatewayMetrics, log),
  ];
  const apollo = new ApolloServer<GatewayContext>({
    // Identical queries in flight run once (gateway/dedup), after every per-request plugin has run for each caller.
    gateway: dedup.enabled ? deduplicatingGateway(gateway, new OperationDedup(new PublicOperations(authorization, dedup.publicFields))) : gateway,
    plugins,
    introspection: envBool('GATEWAY_INTROSPECTION', true),
    persistedQueries: persistedQueriesFromEnv(redis, log),
    includeStacktraceInErrorResponses: false,
    // The service's HttpService owns signals and draining; Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
  });
  await apollo.start();

  // @apollo/gateway plans subscriptions but will not run them: the gateway does (gateway/subscriptions).
  const planner = new SubscriptionPlanner(supergraphForGateway(supergraphSdl));
  const urlOf = (name: string) => subgraphUrlOverride(name) ?? planner.subgraphs.find((s) => s.name === name)!.url;
  const services: ServiceMap = Object.fromEntries(planner.subgraphs.map((s) => [s.name, observeSubgraphFetches(s.name, dataSourceFor(s.name, urlOf(s.name)), gatewayMetrics)]));
  const subscriptions = new SubscriptionService(
    { planner, services, urlOf, log, authorization, limits, demand, safelist, gate: new SubscriptionGate(rateLimiter) },
    { perConnection: envInt('GATEWAY_SUBSCRIPTIONS_PER_CONNECTION', 16, { min: 1 }) },
  );

  let sequence = 0;
  const nextRequestId = () => `${process.pid}-${++sequence}`;
  /** The caller's context from an Authorization value and the request that carried it; the same rules for HTTP and WebSocket. */
  const contextFor = async (authorization: string | undefined, req: IncomingMessage, requestId: string): Promise<GatewayContext> => {
    const claims = await authenticator.authenticate(authorization, clientIp(req, trustProxy));
    const trace = traceContextFor(req);
    return { identity: new SignedIdentity(claims, signer), requestId, traceparent: trace.traceparent, ...(trace.tracestate ? { tracestate: trace.tracestate } : {}) };
  };

  const heartbeatMs = envInt('GATEWAY_MULTIPART_HEARTBEAT_MS', 5_000, { min: 100 });
  const serveMetrics = envBool('GATEWAY_METRICS', true) ? metricsEndpoint({ metrics: gatewayMetrics, token: envString('GATEWAY_METRICS_TOKEN') }) : undefined;
  if (serveMetrics) {
    gatewayMetrics.enableProcessMetrics();
    joinClusterMetrics(gatewayMetrics);
  }
  const graphql = apolloHttpHandler<GatewayContext>(apollo, {
    bodyLimitBytes: envInt('GATEWAY_BODY_LIMIT_BYTES', 1024 * 1024, { min: 1024 }),
    context: async (req: IncomingMessage) => {
      try {
        return await contextFor(req.headers.authorization, req, (req.headers['x-request-id'] as string | undefined) ?? nextRequestId());
      } catch (error) {
        if (error instanceof AuthenticationError) throw new ContextError(401, ErrorCode.Unauthenticated, error.message);
        if (error instanceof KeysUnavailableError) {
          log.error('cannot verify credentials', { error: error.message });
          throw new ContextError(503, ErrorCode.ServiceUnavailable, 'credentials cannot be verified right now: the auth service is unreachable');
        }
        throw error;
      }
    },
    intercept: async (req, res, body, context) => {
      if (refuseOversizedSource(req, res, body, limits)) return true;
      if (safelist && refuseUnlisted(req, res, body, safelist)) return true;
      return wantsMultipartSubscription(req) ? serveMultipartSubscription(subscriptions, res, body, context, heartbeatMs) : false;
    },
  });

  const http: HttpService = new HttpService({
    name: 'gateway',
    host: config.host,
    port: config.port,
    log,
    handle: async (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/graphql' || path === '/') return observeHttp(req, res, graphql, gatewayMetrics);
      if (path === '/metrics' && serveMetrics) return serveMetrics(req, res);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route for ${path}: GraphQL and Sandbox are on /graphql\n`);
    },
    // Everything else that uses Redis keeps serving without it (caches miss, limits fall back to each process):
    // only a gateway that refuses without Redis is not ready without it.
    checks: rateLimits.onRedisError === 'closed' ? { redis: () => redisIsReady(redis) } : {},
    onDrain: (timeoutMs) => websocket.drain(timeoutMs),
    onStop: async () => {
      await apollo.stop();
      rateLimiter.close();
      await subgraphClients.close();
      redis.disconnect();
    },
  });
  const websocket = serveGatewayWs({
    http,
    log,
    apollo,
    subscriptions,
    keepAliveMs: envInt('GATEWAY_WS_KEEPALIVE_MS', 12_000, { min: 1_000 }),
    recheckMs: Math.max(1_000, credentialsCacheMs),
    authenticate: async (authorization, upgrade) => {
      try {
        return await contextFor(authorization, upgrade, nextRequestId());
      } catch (error) {
        if (error instanceof AuthenticationError) throw new ConnectionRefused(4401, `Unauthorized: ${error.message}`);
        if (error instanceof KeysUnavailableError) throw new ConnectionRefused(4503, 'Service unavailable: credentials cannot be verified right now');
        throw error;
      }
    },
  });
  const port = await http.listen();
  http.markReady();
  log.info('ready', { url: `http://localhost:${port}/graphql`, sandbox, supergraph: options.supergraphFile ?? options.supergraphConfig });
  return { name: 'gateway', port, http, stop: () => http.stop() };
}
