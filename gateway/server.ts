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
import type { RunningService, ServiceConfig } from '../lib/subgraph-service';
import { AuthenticationError, Authenticator, KeysUnavailableError } from './authenticate';
import { authorizationPlugin } from './authorization/apollo-plugin';
import { AuthorizationPolicy } from './authorization/policy';
import { supergraphForGateway } from './authorization/gateway-supergraph';
import { SignedIdentity, type GatewayContext } from './context';
import { clientIp } from './credentials/client-ip';
import { SignedIdentityDataSource } from './identity-data-source';
import { operationLimitsFromEnv, operationLimitsPlugin, refuseOversizedSource } from './operation-limits';
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

  const gateway = new ApolloGateway({
    supergraphSdl: supergraphForGateway(supergraphSdl),
    buildService: ({ name, url }) => new SignedIdentityDataSource({ url: subgraphUrlOverride(name) ?? url }),
  });
  const sandbox = envBool('GATEWAY_SANDBOX', true);
  // @authenticated/@requiresScopes, enforced on every operation before it is planned (gateway/authorization).
  const authorization = AuthorizationPolicy.fromSupergraph(supergraphSdl);
  const limits = operationLimitsFromEnv();
  const plugins: ApolloServerPlugin<GatewayContext>[] = [
    operationLimitsPlugin(limits),
    authorizationPlugin(authorization),
    sandbox ? ApolloServerPluginLandingPageLocalDefault({ embed: true, footer: false }) : ApolloServerPluginLandingPageDisabled(),
  ];
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    plugins,
    introspection: envBool('GATEWAY_INTROSPECTION', true),
    includeStacktraceInErrorResponses: false,
    // The service's HttpService owns signals and draining; Apollo's own handlers would race it.
    stopOnTerminationSignals: false,
  });
  await apollo.start();

  // @apollo/gateway plans subscriptions but will not run them: the gateway does (gateway/subscriptions).
  const planner = new SubscriptionPlanner(supergraphForGateway(supergraphSdl));
  const urlOf = (name: string) => subgraphUrlOverride(name) ?? planner.subgraphs.find((s) => s.name === name)!.url;
  const services: ServiceMap = Object.fromEntries(planner.subgraphs.map((s) => [s.name, new SignedIdentityDataSource({ url: urlOf(s.name) })]));
  const subscriptions = new SubscriptionService(
    { planner, services, urlOf, log, authorization, limits },
    {
      perConnection: envInt('GATEWAY_SUBSCRIPTIONS_PER_CONNECTION', 16, { min: 1 }),
      perUser: envInt('GATEWAY_SUBSCRIPTIONS_PER_USER', 32, { min: 1 }),
    },
  );

  let sequence = 0;
  const nextRequestId = () => `${process.pid}-${++sequence}`;
  /** The caller's context from an Authorization value and the request that carried it; the same rules for HTTP and WebSocket. */
  const contextFor = async (authorization: string | undefined, req: IncomingMessage, requestId: string): Promise<GatewayContext> => {
    const claims = await authenticator.authenticate(authorization, clientIp(req, trustProxy));
    return { identity: new SignedIdentity(claims, signer), requestId };
  };

  const heartbeatMs = envInt('GATEWAY_MULTIPART_HEARTBEAT_MS', 5_000, { min: 100 });
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
      if (path === '/graphql' || path === '/') return graphql(req, res);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route for ${path}: GraphQL and Sandbox are on /graphql\n`);
    },
    checks: { redis: () => redisIsReady(redis) },
    onDrain: (timeoutMs) => websocket.drain(timeoutMs),
    onStop: async () => {
      await apollo.stop();
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
