/**
 * For tests: a real gateway on port 0, over the project's supergraph (or a
 * given supergraph file), with a stand-in auth service (its JWKS, and no
 * session ever revoked) and Redis in memory, and the three ways an operation
 * reaches it: HTTP (Apollo Server's path), graphql-ws and multipart HTTP (the
 * subscription path). Over the project's supergraph no subgraph runs: the
 * operations sent are refused before anything is fetched.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { generateIdentityKeyPair } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import { SESSION_ALGORITHM, SESSION_AUDIENCE, SESSION_ISSUER } from '../../lib/session-token';
import type { RunningService } from '../../lib/subgraph-service';
import { readMultipart, wsClient } from '../../test/support/subscriptions';
import { gatewayConfigFromEnv } from '../config';
import { startGateway } from '../server';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

export interface TestGateway {
  url: string;
  /** A session token the gateway accepts, for a signed-in caller with these scopes. */
  token(scopes: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a gateway whose settings are `env` over the defaults (process.env is not read for them), over `supergraphFile` if given. */
export async function startTestGateway(env: Record<string, string> = {}, supergraphFile?: string): Promise<TestGateway> {
  // The identity key comes from the process's environment (lib/identity); any key will do, as no subgraph is called.
  process.env.SLUICE_IDENTITY_PRIVATE_KEY ??= generateIdentityKeyPair().privateKeyPem;
  const sessionKey = generateKeyPairSync('ed25519');
  const jwk = { ...(await exportJWK(sessionKey.publicKey)), kid: 'test', alg: SESSION_ALGORITHM, use: 'sig' };
  const auth: Server = createServer((req, res) => {
    const body = req.url === '/.well-known/jwks.json' ? { keys: [jwk] } : { revoked: false };
    req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
  });
  await new Promise<void>((resolve) => auth.listen(0, '127.0.0.1', resolve));
  const authUrl = `http://127.0.0.1:${(auth.address() as AddressInfo).port}`;
  let gateway: RunningService;
  try {
    gateway = await startGateway(
      { host: '127.0.0.1', port: 0, redisUrl: 'memory://', log: silent },
      {
        ...(supergraphFile ? { supergraphFile } : { supergraphConfig: 'supergraph.yaml' }),
        config: gatewayConfigFromEnv({ GATEWAY_AUTH_URL: authUrl, GATEWAY_AUTH_JWKS_URL: `${authUrl}/.well-known/jwks.json`, GATEWAY_METRICS: 'false', ...env }),
      },
    );
  } catch (error) {
    auth.close();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${gateway.port}/graphql`,
    token: (scopes) =>
      new SignJWT({ scopes })
        .setProtectedHeader({ alg: SESSION_ALGORITHM, kid: 'test' })
        .setSubject(`user-${randomBytes(4).toString('hex')}`)
        .setJti(randomBytes(8).toString('hex'))
        .setIssuer(SESSION_ISSUER)
        .setAudience(SESSION_AUDIENCE)
        .setExpirationTime('1h')
        .sign(sessionKey.privateKey),
    stop: async () => {
      await gateway.stop();
      auth.closeAllConnections();
      await new Promise((resolve) => auth.close(resolve));
    },
  };
}

export interface Operation {
  query: string;
  variables?: Record<string, unknown>;
  extensions?: Record<string, unknown>;
}

export interface Answer {
  status: number;
  codes: unknown[];
}

const codesOf = (errors: Array<{ extensions?: Record<string, unknown> }> | undefined) => (errors ?? []).map((e) => e.extensions?.code);

/** A plain POST: Apollo Server runs it, whatever its kind. */
export async function overHttp(url: string, operation: Operation, token?: string): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(operation),
  });
  return { status: response.status, codes: codesOf(((await response.json()) as { errors?: [] }).errors) };
}

/** A subscription over graphql-ws: the codes of the errors it ends with (its first event's, or its refusal's). */
export async function overWebSocket(url: string, operation: Operation, token?: string): Promise<unknown[]> {
  const client = wsClient(url, token);
  try {
    for await (const event of client.iterate({ query: operation.query, variables: operation.variables ?? {}, extensions: operation.extensions })) return codesOf(event.errors as []);
    return [];
  } catch (error) {
    // graphql-ws throws a refusal (the server's `error` message) as its array of GraphQL errors.
    if (Array.isArray(error)) return codesOf(error);
    throw error;
  } finally {
    await client.dispose();
  }
}

/** A subscription over multipart HTTP: the refusal's status and codes, or the codes of its first event. */
export async function overMultipart(url: string, operation: Operation, token?: string): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0"', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(operation),
  });
  if (!/multipart/.test(response.headers.get('content-type') ?? '')) {
    return { status: response.status, codes: codesOf(((await response.json()) as { errors?: [] }).errors) };
  }
  const parts = await readMultipart(response);
  return { status: response.status, codes: codesOf(parts.find((p) => p.payload)?.payload?.errors) };
}
