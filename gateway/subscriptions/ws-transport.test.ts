/**
 * The gateway's graphql-ws endpoint on a real HttpService (port 0), with a
 * real SubscriptionService over a graphql-ws subgraph: close codes for
 * refused and revoked credentials, events with the other subgraph's fields,
 * unsubscription reaching the subgraph, an upstream failure mid-stream, the
 * per-connection limit, and queries through Apollo Server.
 */
import { ApolloServer } from '@apollo/server';
import type { Client, FormattedExecutionResult } from 'graphql-ws';
import { CloseCode } from '../../lib/graphql-ws-endpoint';
import { HttpService } from '../../lib/http-service';
import { wsClient } from '../../test/support/subscriptions';
import type { GatewayContext } from '../auth/context';
import { callerContext, silent, TICKS, TicksSubgraph, ticksService } from './testing/ticks-subgraphs';
import { ConnectionRefused, serveGatewayWs } from './ws-transport';

const ticks = new TicksSubgraph();
let http: HttpService;
let url: string;
/** Credentials the stand-in authentication refuses from now on, and how. */
const refusals = new Map<string, ConnectionRefused>([
  ['Bearer bad', new ConnectionRefused(CloseCode.Unauthorized, 'Unauthorized: the token is not valid')],
  ['Bearer unverifiable', new ConnectionRefused(CloseCode.ServiceUnavailable, 'Service unavailable: credentials cannot be verified right now')],
]);

beforeAll(async () => {
  await ticks.start();
  const apollo = new ApolloServer<GatewayContext>({ typeDefs: 'type Query { hello: String }', resolvers: { Query: { hello: () => 'world' } } });
  await apollo.start();
  http = new HttpService({
    name: 'ws-test',
    host: '127.0.0.1',
    port: 0,
    log: silent,
    handle: async (_, res) => void res.writeHead(404).end(),
    onDrain: (ms) => websocket.drain(ms),
    onStop: () => apollo.stop(),
  });
  const websocket = serveGatewayWs({
    http,
    log: silent,
    apollo,
    subscriptions: ticksService(ticks, 1),
    keepAliveMs: 12_000,
    recheckMs: 50,
    authenticate: async (authorization) => {
      const refused = refusals.get(authorization ?? '');
      if (refused) throw refused;
      return callerContext();
    },
  });
  url = `http://127.0.0.1:${await http.listen()}/graphql`;
  http.markReady();
});
afterAll(async () => {
  await http.stop();
  await ticks.stop();
});

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});
function client(token = 'good'): Client {
  const created = wsClient(url, token);
  clients.push(created);
  return created;
}

/** The close event of a client's socket. */
const closed = (c: Client) => new Promise<{ code: number; reason: string }>((resolve) => c.on('closed', (event) => resolve(event as { code: number; reason: string })));

/** Events of one subscription, and its refusal or failure (graphql-ws throws a refusal as its errors). */
async function subscribe(c: Client, variables: Record<string, unknown>, stopAfter = Infinity) {
  const events: Array<FormattedExecutionResult<{ ticks: { n: number; label: string } }, unknown>> = [];
  try {
    for await (const event of c.iterate<{ ticks: { n: number; label: string } }>({ query: TICKS, variables })) {
      events.push(event);
      if (events.length >= stopAfter) break;
    }
    return { events };
  } catch (error) {
    return { events, error };
  }
}

it('closes a connection whose credentials are refused with CloseCode.Unauthorized, or ServiceUnavailable when they cannot be checked, and the reason', async () => {
  for (const [token, refusal] of [
    ['bad', refusals.get('Bearer bad')!],
    ['unverifiable', refusals.get('Bearer unverifiable')!],
  ] as const) {
    const c = client(token);
    const close = closed(c);
    void subscribe(c, { count: 1 });
    expect(await close).toMatchObject({ code: refusal.closeCode, reason: refusal.message });
  }
});

it('closes an open connection with CloseCode.Unauthorized once its credentials are revoked, ending its subscriptions upstream', async () => {
  const c = client('revoked-later');
  const close = closed(c);
  const disconnections = ticks.disconnections;
  const events = c.iterate({ query: TICKS, variables: { count: 1000, intervalMs: 10 } });
  await events.next();
  refusals.set('Bearer revoked-later', new ConnectionRefused(CloseCode.Unauthorized, 'Unauthorized: the session has been logged out'));
  expect(await close).toMatchObject({ code: CloseCode.Unauthorized, reason: 'Unauthorized: the session has been logged out' });
  // The client connection's upstream connection closes with it.
  await ticks.waitForDisconnections(disconnections + 1);
});

it("streams a subscription's events, with the other subgraph's fields, to its end", async () => {
  expect(await subscribe(client(), { count: 3 })).toEqual({ events: [1, 2, 3].map((n) => ({ data: { ticks: { n, label: `tick ${n}` } } })) });
});

it('unsubscribes on the subgraph when the client completes the subscription', async () => {
  const unsubscribed = ticks.unsubscribed;
  const { events } = await subscribe(client(), { count: 1000, intervalMs: 10 }, 2);
  expect(events).toHaveLength(2);
  await ticks.waitForUnsubscribed(unsubscribed + 1);
});

it('ends a subscription whose upstream connection drops with a SERVICE_UNAVAILABLE event, after the events already sent', async () => {
  const { events, error } = await subscribe(client(), { count: 5, intervalMs: 10, dropAt: 3 });
  expect(error).toBeUndefined();
  expect(events.map((e) => e.data?.ticks?.n ?? e.errors?.[0].extensions?.code)).toEqual([1, 2, 'SERVICE_UNAVAILABLE']);
});

it('refuses a subscription past the per-connection limit with RATE_LIMITED, and admits one again once the first ends', async () => {
  const c = client();
  const first = c.iterate({ query: TICKS, variables: { count: 1000, intervalMs: 10 } });
  await first.next();
  const { error } = await subscribe(c, { count: 1 });
  expect(error).toEqual([expect.objectContaining({ extensions: { code: 'RATE_LIMITED', limit: 1, scope: 'connection' } })]);
  await first.return!(undefined);
  expect((await subscribe(c, { count: 1 })).events).toHaveLength(1);
});

it('runs queries through Apollo Server', async () => {
  const result = await new Promise((resolve, reject) => client().subscribe({ query: '{ hello }' }, { next: resolve, error: reject, complete: () => undefined }));
  expect(result).toEqual({ data: { hello: 'world' } });
});
