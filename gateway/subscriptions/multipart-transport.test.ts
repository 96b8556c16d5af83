/**
 * Multipart HTTP subscriptions on a real HTTP server (port 0), with a real
 * SubscriptionService over a graphql-ws subgraph: parts and heartbeats, the
 * closing boundary, a client leaving (unsubscribed upstream), an upstream
 * failure mid-stream, a refusal's status and headers, and what is left to
 * Apollo Server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { codedError, ErrorCode } from '../../lib/errors';
import { readMultipart } from '../../test/support/subscriptions';
import { GatewayPipeline } from '../pipeline/pipeline';
import { serveMultipartSubscription } from './multipart-transport';
import { SubscriptionService } from './subscription-service';
import { callerContext, silent, TICKS, TicksSubgraph, ticksService, ticksSupergraph } from './testing/ticks-subgraphs';

const HEARTBEAT_MS = 100;
const ticks = new TicksSubgraph();
const servers: Server[] = [];

/** An HTTP server that serves multipart subscriptions with `subscriptions`, answering 404 to what it leaves to Apollo Server. */
async function serve(subscriptions: SubscriptionService): Promise<string> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const served = await serveMultipartSubscription(subscriptions, res, JSON.parse(Buffer.concat(chunks).toString('utf8')), callerContext(), HEARTBEAT_MS);
    if (!served) res.writeHead(404).end('left to Apollo Server');
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
}

let url: string;
beforeAll(async () => {
  await ticks.start();
  url = await serve(ticksService(ticks));
});
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await ticks.stop();
});

const post = (target: string, body: unknown, signal?: AbortSignal) =>
  fetch(target, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'multipart/mixed;subscriptionSpec="1.0"' }, body: JSON.stringify(body), signal });

it('sends each event as a part, heartbeats while waiting, and the closing boundary at the end', async () => {
  const response = await post(url, { query: TICKS, variables: { count: 2, intervalMs: HEARTBEAT_MS * 3 } });
  expect(response.headers.get('content-type')).toBe('multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"');
  const parts = await readMultipart(response);
  expect(parts[0]).toEqual({});
  expect(parts.filter((p) => p.payload).map((p) => p.payload)).toEqual([1, 2].map((n) => ({ data: { ticks: { n, label: `tick ${n}` } } })));
  // One heartbeat at the start, then about two per event.
  expect(parts.filter((p) => !p.payload).length).toBeGreaterThanOrEqual(3);
});

it('unsubscribes upstream when the client goes away', async () => {
  const abort = new AbortController();
  const unsubscribed = ticks.unsubscribed;
  const disconnections = ticks.disconnections;
  const response = await post(url, { query: TICKS, variables: { count: 1000, intervalMs: 10 } }, abort.signal);
  const reader = response.body!.getReader();
  await reader.read();
  abort.abort();
  // The client connection (this request) closes its upstream connection too: either ends the stream on the subgraph.
  await Promise.any([ticks.waitForUnsubscribed(unsubscribed + 1), ticks.waitForDisconnections(disconnections + 1)]);
});

it('ends with a SERVICE_UNAVAILABLE part when the upstream connection drops, then the closing boundary', async () => {
  const parts = await readMultipart<{ ticks: { n: number } }>(await post(url, { query: TICKS, variables: { count: 5, intervalMs: 10, dropAt: 3 } }));
  expect(parts.filter((p) => p.payload).map((p) => p.payload!.data?.ticks?.n ?? p.payload!.errors?.[0].extensions?.code)).toEqual([1, 2, 'SERVICE_UNAVAILABLE']);
});

it("answers a refused subscription with the refusal's status, headers and errors", async () => {
  const { planner, services } = ticksSupergraph(ticks.url);
  const refusing = new GatewayPipeline([{ name: 'refusing', operationDidResolve: () => [codedError(ErrorCode.RateLimited, 'slow down', { limit: 5, remaining: 0, retryAfter: 7 })] }]);
  const response = await post(await serve(new SubscriptionService({ planner, services, urlOf: () => ticks.url, log: silent, pipeline: refusing }, { perConnection: 1 })), {
    query: TICKS,
    variables: { count: 1 },
  });
  expect(response.status).toBe(429);
  expect([response.headers.get('retry-after'), response.headers.get('ratelimit-limit'), response.headers.get('ratelimit-remaining')]).toEqual(['7', '5', '0']);
  expect(await response.json()).toEqual({ errors: [{ message: 'slow down', extensions: { code: 'RATE_LIMITED', limit: 5, remaining: 0, retryAfter: 7 } }] });
});

it('leaves queries and malformed operations to Apollo Server', async () => {
  expect((await post(url, { query: '{ hello }' })).status).toBe(404);
  expect((await post(url, { query: 'subscription {' })).status).toBe(404);
});
