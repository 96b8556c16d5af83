import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { ApolloGateway, GraphQLDataSourceProcessOptions, RemoteGraphQLDataSource } from '@apollo/gateway';
import { ApolloServer, ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import { apolloHttpHandler, ContextError } from '../lib/apollo-http';
import { envBool, envInt, envString } from '../lib/config';
import { ErrorCode } from '../lib/errors';
import { HttpService } from '../lib/http-service';
import { IDENTITY_HEADER, IdentitySigner, identitySignerFromEnv } from '../lib/identity';
import type { RunningService, ServiceConfig } from '../lib/subgraph-service';
import { AuthenticationError, Authenticator, KeysUnavailableError } from './authenticate';
import { composeSupergraph, readSupergraphConfig, subgraphUrlOverride } from './supergraph';

export interface GatewayContext {
  /** The signed identity forwarded to every subgraph fetch of this operation. */
  identityHeader: string;
  requestId: string;
}

export interface GatewayOptions {
  /** Compose from this rover-format config... */
  supergraphConfig?: string;
  /** ...or serve this ready supergraph SDL file. */
  supergraphFile?: string;
}

/**
 * Forwards the caller's signed identity (never their token) and the request id
 * on every subgraph fetch.
 */
class SignedIdentityDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    if (!('identityHeader' in context)) return; // the gateway's own health checks carry no caller
    request.http?.headers.set(IDENTITY_HEADER, context.identityHeader);
    request.http?.headers.set('x-request-id', context.requestId);
  }
}

export async function startGateway(config: ServiceConfig, options: GatewayOptions): Promise<RunningService> {
  const { log } = config;
  const supergraphSdl = options.supergraphFile
    ? readFileSync(options.supergraphFile, 'utf8')
    : composeSupergraph(readSupergraphConfig(options.supergraphConfig as string));
  const signer: IdentitySigner = identitySignerFromEnv(envInt('GATEWAY_IDENTITY_TTL_SECONDS', 60, { min: 5 }));
  const authenticator = new Authenticator({
    jwksUrl: envString('GATEWAY_AUTH_JWKS_URL', 'http://127.0.0.1:4001/.well-known/jwks.json'),
  });

  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name, url }) => new SignedIdentityDataSource({ url: subgraphUrlOverride(name) ?? url }),
  });
  const sandbox = envBool('GATEWAY_SANDBOX', true);
  const plugins: ApolloServerPlugin<GatewayContext>[] = [
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

  let sequence = 0;
  const graphql = apolloHttpHandler<GatewayContext>(apollo, {
    bodyLimitBytes: envInt('GATEWAY_BODY_LIMIT_BYTES', 1024 * 1024, { min: 1024 }),
    context: async (req: IncomingMessage) => {
      const requestId = (req.headers['x-request-id'] as string | undefined) ?? `${process.pid}-${++sequence}`;
      try {
        const claims = await authenticator.authenticate(req.headers.authorization);
        return { identityHeader: signer.sign(claims), requestId };
      } catch (error) {
        if (error instanceof AuthenticationError) throw new ContextError(401, ErrorCode.Unauthenticated, error.message);
        if (error instanceof KeysUnavailableError) {
          log.error('cannot verify credentials', { error: error.message });
          throw new ContextError(503, ErrorCode.ServiceUnavailable, 'credentials cannot be verified right now: the auth service is unreachable');
        }
        throw error;
      }
    },
  });

  const http = new HttpService({
    name: 'gateway',
    host: config.host,
    port: config.port,
    log,
    handle: async (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/graphql' || path === '/') return graphql(req, res);
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route for ${path}: GraphQL and Sandbox are on /graphql\n`);
    },
    onStop: () => apollo.stop(),
  });
  const port = await http.listen();
  http.markReady();
  log.info('ready', { url: `http://localhost:${port}/graphql`, sandbox, supergraph: options.supergraphFile ?? options.supergraphConfig });
  return { name: 'gateway', port, http, stop: () => http.stop() };
}
