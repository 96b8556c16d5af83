/**
 * The graphql-ws endpoint on a real HttpService (port 0) and a real client:
 * messages sent in one turn of the event loop leave the socket in one write,
 * and still arrive as separate messages, in order; a document is parsed and
 * validated once per text, and an invalid one is refused every time.
 */
import type { Socket } from 'node:net';
import { buildSchema, type GraphQLResolveInfo, type OperationDefinitionNode } from 'graphql';
import type { Client } from 'graphql-ws';
import { wsClient } from '../test/support/subscriptions';
import { serveGraphQLWs } from './graphql-ws-endpoint';
import { HttpService } from './http-service';
import type { Logger } from './log';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

const SUBSCRIBERS = 20;
const schema = buildSchema('type Query { ok: Boolean } type Subscription { released: Int! echo(n: Int!): Int! }');

/** Every subscription waits for the same release, so all their messages are sent in one turn. */
let release: (value: number) => void = () => undefined;
const released = new Promise<number>((resolve) => (release = resolve));
let subscribed = 0;
/** The operation each `echo` subscription ran, as graphql-js handed it to the field. */
const operations: OperationDefinitionNode[] = [];

let http: HttpService;
let url: string;
/** Writes the server's sockets made: each call of _write or _writev is one system call's worth. */
let writes = 0;

beforeAll(async () => {
  http = new HttpService({ name: 'ws-endpoint-test', host: '127.0.0.1', port: 0, log: silent, handle: (_, res) => void res.writeHead(404).end() });
  // Registered before the endpoint's own listener, so it sees the socket the endpoint upgrades.
  http.server.on('upgrade', (_req, socket: Socket) => {
    const counted = socket as unknown as { _write: (...args: unknown[]) => void; _writev: (...args: unknown[]) => void };
    for (const method of ['_write', '_writev'] as const) {
      const original = counted[method].bind(socket);
      counted[method] = (...args: unknown[]) => {
        writes++;
        original(...args);
      };
    }
  });
  serveGraphQLWs({
    http,
    path: '/graphql',
    log: silent,
    server: {
      schema,
      roots: {
        subscription: {
          released: async function* () {
            subscribed++;
            yield { released: await released };
          },
          echo: async function* ({ n }: { n: number }, _context: unknown, info: GraphQLResolveInfo) {
            operations.push(info.operation);
            yield { echo: n };
          },
        },
      },
    },
  });
  url = `http://127.0.0.1:${await http.listen()}/graphql`;
  http.markReady();
});
afterAll(() => http.stop());

let client: Client;
afterEach(() => client?.dispose());

test('messages sent in one turn leave in one write, each still its own message, in order', async () => {
  client = wsClient(url);
  const received: number[] = [];
  const ends = Array.from({ length: SUBSCRIBERS }, async () => {
    for await (const event of client.iterate<{ released: number }>({ query: 'subscription { released }' })) received.push(event.data!.released);
  });
  while (subscribed < SUBSCRIBERS) await new Promise((resolve) => setTimeout(resolve, 5));
  const before = writes;
  // One write for the twenty `next` messages; the `complete` messages follow once those writes have finished.
  release(7);
  await Promise.all(ends);
  expect(received).toEqual(Array(SUBSCRIBERS).fill(7));
  expect(writes - before).toBeLessThanOrEqual(2);
});

test('subscriptions of one text share one parsed, validated document; an invalid text is refused each time', async () => {
  client = wsClient(url);
  const echo = async (query: string, n: number) => {
    const events = [];
    try {
      for await (const event of client.iterate<{ echo: number }>({ query, variables: { n } })) events.push(event);
    } catch (errors) {
      return errors as { message: string }[];
    }
    return events.map((e) => e.data!.echo);
  };
  const query = 'subscription Echo($n: Int!) { echo(n: $n) }';
  expect(await echo(query, 1)).toEqual([1]);
  expect(await echo(query, 2)).toEqual([2]);
  expect(operations).toHaveLength(2);
  expect(operations[1]).toBe(operations[0]);
  // Another text is its own document.
  expect(await echo('subscription Other($n: Int!) { echo(n: $n) }', 3)).toEqual([3]);
  expect(operations[2]).not.toBe(operations[0]);
  for (let i = 0; i < 2; i++) expect(await echo('subscription Bad($n: Int!) { echo(n: $n, m: 1) }', 4)).toEqual([expect.objectContaining({ message: expect.stringContaining('"m"') })]);
});
