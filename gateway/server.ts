import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ApolloGateway, type ServiceMap } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { apolloHttpHandler, ContextError } from '../lib/apollo-http';
import { ErrorCode } from '../lib/errors';
import { CloseCode } from '../lib/graphql-ws-endpoint';
import { HttpService } from '../lib/http-service';
import { type IdentitySigner, identitySignerFromEnv } from '../lib/identity';
import { connectRedis, redisIsReady } from '../lib/redis';
import { traceContextFor } from '../lib/trace-context';
import type { RunningService, ServiceConfig } from '../lib/subgraph-service';
import { AuthenticationError, Authenticator, KeysUnavailableError } from './auth/authenticate';
import { authorization } from './auth/authorization/feature';
import { supergraphForGateway } from './auth/authorization/gateway-supergraph';
import { AuthorizationPolicy } from './auth/authorization/policy';
import { SignedIdentity, type GatewayContext } from './auth/context';
import { clientIp } from './auth/credentials/client-ip';
import { SignedIdentityDataSource } from './auth/identity-data-source';
import { gatewayConfigFromEnv, type GatewayConfig } from './config';
import { FetchDedup } from './dedup/fetch-dedup';
import { deduplicatingGateway, OperationDedup } from './dedup/operation-dedup';
import { PublicOperations } from './dedup/public-operations';
import { costDirectivesFromSupergraph } from './demand-control/cost';
import { demandControl } from './demand-control/feature';
import { joinClusterMetrics } from './metrics/cluster-metrics';
import { operationMetrics } from './metrics/feature';
import { gatewayMetrics } from './metrics/gateway-metrics';
import { metricsEndpoint, observeHttp } from './metrics/metrics-endpoint';
import { observeSubgraphFetches } from './metrics/subgraph-fetches';
import { OPENAI_PREFIX, openAiDoor } from './openai/door';
import { GraphOperations } from './openai/graph-operations';
import { operationLimits } from './operation-limits/feature';
import { persistedQueryOptions } from './persisted-queries/apq';
import { safelistFeature } from './persisted-queries/feature';
import { apolloPlugin } from './pipeline/apollo-adapter';
import { refuseHttpSource } from './pipeline/http-source';
import { GatewayPipeline } from './pipeline/pipeline';
import { planExecutorGateway } from './plan-executor/compiled-gateway';
import { serializedResults } from './pipeline/serialized-results';
import { rateLimits } from './rate-limits/feature';
import { RateLimiter } from './rate-limits/limiter';
import { TokenChargeCorrection } from './rate-limits/token-charge-correction';
import { responseCache } from './response-cache/feature';
import { ResponseCacheStore } from './response-cache/store';
import { subgraphCallSettingsFromEnv } from './subgraph-calls/settings';
import { SubgraphClients } from './subgraph-calls/subgraph-client';
import { serveMultipartSubscription, wantsMultipartSubscription } from './subscriptions/multipart-transport';
import { SubscriptionPlanner } from './subscriptions/planner';
import { SubscriptionService } from './subscriptions/subscription-service';
import { ConnectionRefused, serveGatewayWs } from './subscriptions/ws-transport';
import { composeSupergraph, readSupergraphConfig, subgraphUrlOverride } from './supergraph';
import { webAppHandler } from './web-app/web-app-handler';

export type { GatewayContext };

export interface GatewayOptions {
  /** Compose from this rover-format config... */
  supergraphConfig?: string;
  /** ...or serve this ready supergraph SDL file. */
  supergraphFile?: string;
  /** The settings. @default gatewayConfigFromEnv() */
  config?: GatewayConfig;
}

export async function startGateway(service: ServiceConfig, options: GatewayOptions): Promise<RunningService> {
  const { log } = service;
  const config = options.config ?? gatewayConfigFromEnv();
  const supergraphSdl = options.supergraphFile ? readFileSync(options.supergraphFile, 'utf8') : composeSupergraph(readSupergraphConfig(options.supergraphConfig as string));
  // Shared state of every gateway process and replica (rate limits, persisted queries, caches) lives here, under `gw:`.
  const redis = connectRedis(service.redisUrl, log);
  const signer: IdentitySigner = identitySignerFromEnv(config.auth.identityTtlSeconds);
  const authenticator = new Authenticator({
    jwksUrl: config.auth.jwksUrl,
    authUrl: config.auth.authUrl,
    signer,
    cacheMs: config.auth.credentialsCacheMs,
    // While auth cannot be asked, its last answer stands in (gateway/auth/README.md, "While auth is down").
    staleIfErrorMs: config.auth.credentialsStaleIfErrorMs,
    onStaleAnswer: (credential, error, ageMs) => {
      gatewayMetrics.recordStaleCredential(credential, error.reason);
      log.warn('credential checked against an earlier answer: auth cannot be asked', { credential, reason: error.reason, ageMs });
    },
  });
  // Requests, completion tokens and live streams per caller, shared by every gateway process through Redis (gateway/rate-limits).
  const rateLimiter = new RateLimiter(redis, config.rateLimits, log, { onRefusal: (scope, kind) => gatewayMetrics.recordRateLimitRefusal(scope, kind) });
  const tokenCharges = new TokenChargeCorrection();

  // Keep-alive pools, timeouts, retries and circuit breakers, one set per subgraph (gateway/subgraph-calls).
  const subgraphClients = new SubgraphClients(subgraphCallSettingsFromEnv(), { dedup: config.dedup.enabled ? new FetchDedup() : undefined });
  const dataSourceFor = (name: string, url: string | undefined) => {
    if (!url) throw new Error(`subgraph "${name}" has no routing URL in the supergraph: expected one there or in SLUICE_SUBGRAPH_<NAME>_URL`);
    return new SignedIdentityDataSource(name, url, subgraphClients.for(name, url), log);
  };
  const gateway = new ApolloGateway({
    supergraphSdl: supergraphForGateway(supergraphSdl),
    // A completion's real token usage corrects its rate-limit charge.
    buildService: ({ name, url }) => tokenCharges.meter(observeSubgraphFetches(name, dataSourceFor(name, subgraphUrlOverride(name) ?? url), gatewayMetrics)),
  });
  // @authenticated/@requiresScopes, enforced on every operation before it is planned (gateway/auth/authorization).
  const policy = AuthorizationPolicy.fromSupergraph(supergraphSdl);

  // Every operation, over HTTP and as a subscription, runs these, in this order (gateway/pipeline). Removing a feature is removing its line.
  const pipeline = new GatewayPipeline([
    operationLimits(config.operationLimits),
    ...(config.safelist ? [safelistFeature(config.safelist)] : []),
    demandControl(costDirectivesFromSupergraph(supergraphSdl), config.demandControl),
    authorization(policy),
    rateLimits(rateLimiter, tokenCharges),
    // After authorization: entries are keyed by the document the caller may run.
    ...(config.responseCache
      ? [responseCache(new ResponseCacheStore(redis, (operation, error) => log.warn('response cache unavailable', { operation, error: error.message })), config.responseCache)]
      : []),
    // Last: the outcome recorded must include the errors the others add.
    operationMetrics(gatewayMetrics, log),
  ]);
  const apollo = new ApolloServer<GatewayContext>({
    // Identical queries in flight run once (gateway/dedup), after every feature has run for each caller.
    gateway: ((executing) => (config.dedup.enabled ? deduplicatingGateway(executing, new OperationDedup(new PublicOperations(policy, config.dedup.publicFields))) : executing))(
      planExecutorGateway(gateway, config.planExecutor),
    ),
    plugins: [apolloPlugin(pipeline), config.http.sandbox ? ApolloServerPluginLandingPageLocalDefault({ embed: true, footer: false }) : ApolloServerPluginLandingPageDisabled()],
    introspection: config.http.introspection,
    persistedQueries: persistedQueryOptions(config.apq, redis, log),
    includeStacktraceInErrorResponses: false,
    // Each execution's data serialized once, for every caller dedup gave it to and for the response cache (gateway/pipeline).
    stringifyResult: serializedResults.stringify,
    // The service's HttpService owns signals and draining; Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
  });
  await apollo.start();

  // @apollo/gateway plans subscriptions but will not run them: the gateway does (gateway/subscriptions).
  const planner = new SubscriptionPlanner(supergraphForGateway(supergraphSdl));
  const urlOf = (name: string) => subgraphUrlOverride(name) ?? planner.subgraphs.find((s) => s.name === name)!.url;
  const services: ServiceMap = Object.fromEntries(planner.subgraphs.map((s) => [s.name, observeSubgraphFetches(s.name, dataSourceFor(s.name, urlOf(s.name)), gatewayMetrics)]));
  const subscriptions = new SubscriptionService({ planner, services, urlOf, log, pipeline }, { perConnection: config.subscriptions.perConnection });

  let sequence = 0;
  const nextRequestId = () => `${process.pid}-${++sequence}`;
  /** The caller's context from an Authorization value and the request that carried it; the same rules for HTTP and WebSocket. */
  const contextFor = async (authorization: string | undefined, req: IncomingMessage, requestId: string): Promise<GatewayContext> => {
    const claims = await authenticator.authenticate(authorization, clientIp(req, config.auth.trustProxy));
    const trace = traceContextFor(req);
    return { identity: new SignedIdentity(claims, signer), requestId, traceparent: trace.traceparent, ...(trace.tracestate ? { tracestate: trace.tracestate } : {}) };
  };

  const serveMetrics = config.metrics.enabled ? metricsEndpoint({ metrics: gatewayMetrics, token: config.metrics.token }) : undefined;
  if (serveMetrics) {
    gatewayMetrics.enableProcessMetrics();
    joinClusterMetrics(gatewayMetrics);
  }
  /** The context of an HTTP request (/graphql and /v1); a ContextError refuses it. */
  const httpContext = async (req: IncomingMessage) => {
    try {
      return await contextFor(req.headers.authorization, req, (req.headers['x-request-id'] as string | undefined) ?? nextRequestId());
    } catch (error) {
      if (error instanceof AuthenticationError) throw new ContextError(ErrorCode.Unauthenticated, error.message);
      if (error instanceof KeysUnavailableError) {
        log.error('cannot verify credentials', { error: error.message });
        throw new ContextError(ErrorCode.ServiceUnavailable, 'credentials cannot be verified right now: the auth service is unreachable');
      }
      throw error;
    }
  };
  const graphql = apolloHttpHandler<GatewayContext>(apollo, {
    bodyLimitBytes: config.http.bodyLimitBytes,
    context: httpContext,
    encode: (context, body) => serializedResults.bytesFor(context.identity, body),
    intercept: async (req, res, body, context) => {
      if (refuseHttpSource(pipeline, req, res, body)) return true;
      return wantsMultipartSubscription(req) ? serveMultipartSubscription(subscriptions, res, body, context, config.subscriptions.multipartHeartbeatMs) : false;
    },
  });

  const openai =
    config.openai && openAiDoor({ graph: new GraphOperations({ apollo, pipeline, subscriptions }), context: httpContext, options: config.openai, bodyLimitBytes: config.http.bodyLimitBytes });

  // The web app's built files at /app/ (web/), beside Sandbox on /.
  const webApp = webAppHandler();
  const http: HttpService = new HttpService({
    name: 'gateway',
    host: service.host,
    port: service.port,
    log,
    handle: async (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/graphql' || path === '/') return observeHttp(req, res, graphql, gatewayMetrics);
      if (path === '/metrics' && serveMetrics) return serveMetrics(req, res);
      if (await webApp(req, res)) return;
      // OpenAI's API, each route one fixed operation through the same pipeline (gateway/openai).
      if (path.startsWith(OPENAI_PREFIX) && openai) return observeHttp(req, res, openai, gatewayMetrics);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route for ${path}: GraphQL and Sandbox are on /graphql, the web app on /app/, OpenAI's API on /v1\n`);
    },
    // Everything else that uses Redis keeps serving without it (caches miss, limits fall back to each process):
    // only a gateway that refuses without Redis is not ready without it.
    checks: config.rateLimits.onRedisError === 'closed' ? { redis: () => redisIsReady(redis) } : {},
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
    keepAliveMs: config.subscriptions.wsKeepAliveMs,
    recheckMs: Math.max(1_000, config.auth.credentialsCacheMs),
    authenticate: async (authorization, upgrade) => {
      try {
        return await contextFor(authorization, upgrade, nextRequestId());
      } catch (error) {
        if (error instanceof AuthenticationError) throw new ConnectionRefused(CloseCode.Unauthorized, `Unauthorized: ${error.message}`);
        if (error instanceof KeysUnavailableError) throw new ConnectionRefused(CloseCode.ServiceUnavailable, 'Service unavailable: credentials cannot be verified right now');
        throw error;
      }
    },
  });
  const port = await http.listen();
  http.markReady();
  log.info('ready', { url: `http://localhost:${port}/graphql`, sandbox: config.http.sandbox, supergraph: options.supergraphFile ?? options.supergraphConfig });
  return { name: 'gateway', port, http, stop: () => http.stop() };
}
