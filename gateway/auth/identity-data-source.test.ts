/**
 * What the data source adds to every subgraph fetch (identity, request id,
 * trace context) and the coded error a caller gets for a subgraph the
 * gateway could not use.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import { generateIdentityKeyPair, IDENTITY_HEADER, IdentitySigner, IdentityVerifier } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import { SignedIdentity, type GatewayContext } from './context';
import { SignedIdentityDataSource } from './identity-data-source';
import { SubgraphClient } from '../subgraph-calls/subgraph-client';

let server: Server;
let url: string;
let seen: IncomingMessage['headers'][];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":{"models":[]}}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => (seen = []));

const settings = { timeoutMs: 1_000, retries: 1, retryBackoffMs: 1, breakerFailures: 1, breakerOpenMs: 60_000, stallMs: 0, connections: 2, keepAliveMs: 1_000 };
const identityKeys = generateIdentityKeyPair();
const signer = new IdentitySigner(createPrivateKey(identityKeys.privateKeyPem));
const verifier = new IdentityVerifier([createPublicKey(identityKeys.publicKeyPem)]);
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function options(context: GatewayContext): GraphQLDataSourceProcessOptions<GatewayContext> {
  return {
    // GraphQLDataSourceRequestKind.INCOMING_OPERATION: the enum is not exported at run time.
    kind: 'incoming operation',
    request: { query: '{models{id}}', variables: {} },
    context,
    incomingRequestContext: {},
  } as unknown as GraphQLDataSourceProcessOptions<GatewayContext>;
}
const context: GatewayContext = { identity: new SignedIdentity({ sub: 'u1', scopes: [] }, signer), requestId: 'req-7', traceparent: TRACEPARENT, tracestate: 'vendor=1' };

describe('SignedIdentityDataSource', () => {
  it("forwards the identity signed for the subgraph's audience, the request id and the trace context through the subgraph client", async () => {
    const client = new SubgraphClient('inference', url, settings);
    try {
      const response = await new SignedIdentityDataSource('inference', url, client).process(options(context));
      expect(response.data).toEqual({ models: [] });
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ 'x-request-id': 'req-7', traceparent: TRACEPARENT, tracestate: 'vendor=1' });
      const header = seen[0][IDENTITY_HEADER] as string;
      expect(header).toBe(context.identity.header('inference'));
      // Good at inference and at billing, where inference reserves the request's cost; nowhere else.
      expect(verifier.verify(header, 'billing')).toMatchObject({ sub: 'u1', aud: ['inference', 'billing'] });
      expect(() => verifier.verify(header, 'knowledge')).toThrow('issued for inference, billing; expected one issued for knowledge');
    } finally {
      await client.close();
    }
  });

  it('turns a subgraph it could not use into SUBGRAPH_UNAVAILABLE naming the subgraph, then fails fast while the breaker is open', async () => {
    const dead = 'http://127.0.0.1:1/graphql';
    const client = new SubgraphClient('billing', dead, settings, { sleep: async () => {} });
    const logged: unknown[][] = [];
    const log = { warn: (...args: unknown[]) => void logged.push(args) } as unknown as Logger;
    const source = new SignedIdentityDataSource('billing', dead, client, log);
    try {
      const error = await source.process(options(context)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(GraphQLError);
      // The caller learns the service, the reason and the request id; the address and the upstream's words are for the log.
      expect((error as GraphQLError).message).toBe('subgraph "billing" is unavailable, it could not be reached (CONNECTION_FAILED): the fields it serves are null (request req-7)');
      // The query and its one retry: the breaker hears the call's outcome after its retries.
      expect((error as GraphQLError).extensions).toEqual({ code: 'SUBGRAPH_UNAVAILABLE', service: 'billing', reason: 'CONNECTION_FAILED', attempts: 2, requestId: 'req-7' });
      expect(logged).toEqual([
        [
          'subgraph call failed',
          expect.objectContaining({ service: 'billing', reason: 'CONNECTION_FAILED', requestId: 'req-7', detail: expect.stringMatching(/http:\/\/127\.0\.0\.1:1\/graphql failed \(ECONNREFUSED/) }),
        ],
      ]);
      const fast = (await source.process(options(context)).catch((e: unknown) => e)) as GraphQLError;
      expect(fast.extensions).toMatchObject({ code: 'SUBGRAPH_UNAVAILABLE', service: 'billing', reason: 'CIRCUIT_OPEN', attempts: 0, retryAfter: 60 });
      expect(fast.message).toBe('subgraph "billing" is unavailable, it has been failing, so it is not called for now (CIRCUIT_OPEN); retry in 60 s: the fields it serves are null (request req-7)');
    } finally {
      await client.close();
    }
  });
});
