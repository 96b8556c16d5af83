/**
 * serializedResults through a real Apollo Server, the gateway's plugin and
 * HTTP handler: Apollo Server hands plugins a copy of the context, so the
 * bytes noted by the plugin must still be found by the handler (they were
 * not, and every response was encoded again from its text).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { apolloHttpHandler } from '../../lib/apollo-http';
import type { GatewayContext } from '../auth/context';
import { apolloPlugin } from './apollo-adapter';
import { GatewayPipeline } from './pipeline';
import { serializedResults } from './serialized-results';

let server: Server;
let apollo: ApolloServer<GatewayContext>;
let url: string;
const sent: Array<Buffer | string> = [];

beforeAll(async () => {
  apollo = new ApolloServer<GatewayContext>({
    typeDefs: 'type Query { models: [String!]! }',
    resolvers: { Query: { models: () => ['sluice-chat', 'sluice-embed'] } },
    plugins: [apolloPlugin(new GatewayPipeline([]))],
    stringifyResult: serializedResults.stringify,
  });
  await apollo.start();
  const handle = apolloHttpHandler<GatewayContext>(apollo, {
    // A fresh identity per request, as the gateway's httpContext makes one.
    context: async () => ({ identity: {} as GatewayContext['identity'], requestId: 'r' }),
    encode: (context, body) => {
      const bytes = serializedResults.bytesFor(context.identity, body);
      sent.push(bytes);
      return bytes;
    },
  });
  server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await apollo.stop();
});

it('sends the bytes serialized for the result, found from the copy of the context Apollo Server gave the plugin', async () => {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ models }' }) });
  expect(await response.json()).toEqual({ data: { models: ['sluice-chat', 'sluice-embed'] } });
  expect(sent.map((body) => Buffer.isBuffer(body))).toEqual([true]);
});

it('sends the text of a result with errors, which is not shared', async () => {
  sent.length = 0;
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ models nope }' }) });
  expect(response.status).toBe(400);
  // A validation failure never reaches willSendResponse with data: what goes out is Apollo Server's own text.
  expect(sent.map((body) => typeof body)).toEqual(['string']);
});
