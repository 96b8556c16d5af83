import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { apolloHttpHandler } from './apollo-http';

const LIMIT = 1024;
let server: Server;
let apollo: ApolloServer<{ caller: string }>;
let url: string;
const encoded: string[] = [];

beforeAll(async () => {
  apollo = new ApolloServer<{ caller: string }>({
    typeDefs: 'type Query { echo(text: String!): String! caller: String! }',
    resolvers: { Query: { echo: (_: unknown, { text }: { text: string }) => text, caller: (_: unknown, __: unknown, context: { caller: string }) => context.caller } },
  });
  await apollo.start();
  const handle = apolloHttpHandler(apollo, {
    bodyLimitBytes: LIMIT,
    context: async (req) => ({ caller: String(req.headers['x-caller'] ?? 'nobody') }),
    encode: (context, body) => {
      encoded.push(context.caller);
      return Buffer.from(body);
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

/** POSTs the body in the given pieces (chunked, unless a content-length is given), on a connection of its own. */
function post(pieces: string[], headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    for (const piece of pieces) req.write(piece);
    req.end();
  });
}

describe('apolloHttpHandler', () => {
  it('reads a body sent in several pieces and answers with what encode gives for the context', async () => {
    const body = JSON.stringify({ query: '{ echo(text: "héllo, wörld") caller }' });
    const pieces = [body.slice(0, 7), body.slice(7, 20), body.slice(20)];
    encoded.length = 0;
    expect(await post(pieces, { 'x-caller': 'ada' })).toEqual({ status: 200, body: `${JSON.stringify({ data: { echo: 'héllo, wörld', caller: 'ada' } })}\n` });
    expect(encoded).toEqual(['ada']);
  });

  it('refuses a body that is not JSON with BAD_USER_INPUT, and one declared larger than the limit with PAYLOAD_TOO_LARGE', async () => {
    const malformed = await post(['{"query": '], { 'x-caller': 'ada' });
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body).errors[0]).toMatchObject({ message: expect.stringMatching(/^request body is not valid JSON: /), extensions: { code: 'BAD_USER_INPUT' } });
    const largeBody = JSON.stringify({ query: `{ echo(text: "${'x'.repeat(LIMIT)}") }` });
    const large = await post([largeBody], { 'content-length': String(Buffer.byteLength(largeBody)) });
    expect(large.status).toBe(413);
    expect(JSON.parse(large.body).errors[0]).toEqual({ message: `request body is larger than the limit of ${LIMIT} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('stops reading a chunked body once it passes the limit', async () => {
    const outcome = await post(['{"query": "', 'x'.repeat(LIMIT), '"}']).then(
      (res) => res.status,
      (error: NodeJS.ErrnoException) => error.code,
    );
    // The request is destroyed as soon as the limit is passed: the 413 arrives if the socket is still writable, else the connection is reset.
    expect([413, 'ECONNRESET', 'EPIPE']).toContain(outcome);
  });
});
