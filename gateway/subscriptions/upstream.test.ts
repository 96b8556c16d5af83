/**
 * UpstreamConnections against a real graphql-ws subgraph on port 0: the
 * signed identity at connection_init and on each subscription, one shared
 * connection per subgraph, unsubscription reaching the subgraph (by return()
 * and by abort, even while waiting for an event), and a dropped connection.
 */
import { IDENTITY_HEADER } from '../../lib/identity';
import { callerContext, TicksSubgraph } from './testing/ticks-subgraphs';
import { UpstreamClosedError, UpstreamConnections, type UpstreamEvent } from './upstream';

const ticks = new TicksSubgraph();
beforeAll(() => ticks.start());
afterAll(() => ticks.stop());

const query = 'subscription($count: Int!, $intervalMs: Int, $dropAt: Int) { ticks(count: $count, intervalMs: $intervalMs, dropAt: $dropAt) { n } }';
const upstream = () => new UpstreamConnections(() => ticks.url, callerContext().identity);

async function all(events: AsyncGenerator<UpstreamEvent>): Promise<UpstreamEvent[]> {
  const seen: UpstreamEvent[] = [];
  for await (const event of events) seen.push(event);
  return seen;
}

it('streams every event, with the signed identity at connection_init and on each subscription, over one connection per subgraph', async () => {
  const connections = upstream();
  const before = { connections: ticks.connections.length, subscriptions: ticks.subscriptions.length };
  const [first, second] = await Promise.all([all(connections.subscribe('ticks', { query, variables: { count: 2 } })), all(connections.subscribe('ticks', { query, variables: { count: 3 } }))]);
  expect(first.map((e) => e.data)).toEqual([{ ticks: { n: 1 } }, { ticks: { n: 2 } }]);
  expect(second).toHaveLength(3);
  expect(ticks.connections.length - before.connections).toBe(1);
  expect(ticks.connections.at(-1)?.[IDENTITY_HEADER]).toEqual(expect.any(String));
  expect(ticks.subscriptions.slice(before.subscriptions).map((e) => typeof e[IDENTITY_HEADER])).toEqual(['string', 'string']);
  await connections.close();
});

it('unsubscribes on the subgraph when the iterator is returned', async () => {
  const connections = upstream();
  const unsubscribed = ticks.unsubscribed;
  const events = connections.subscribe('ticks', { query, variables: { count: 1000, intervalMs: 10 } });
  expect((await events.next()).value).toEqual({ data: { ticks: { n: 1 } } });
  await events.return(undefined);
  await ticks.waitForUnsubscribed(unsubscribed + 1);
  await connections.close();
});

it('ends at once on abort, while waiting for an event, and unsubscribes on the subgraph', async () => {
  const connections = upstream();
  const unsubscribed = ticks.unsubscribed;
  const abort = new AbortController();
  const events = connections.subscribe('ticks', { query, variables: { count: 2, intervalMs: 60_000 } }, abort.signal);
  const waiting = events.next();
  await new Promise((resolve) => setTimeout(resolve, 50));
  abort.abort();
  expect(await waiting).toEqual({ done: true, value: undefined });
  await connections.close();
  await ticks.waitForUnsubscribed(unsubscribed + 1);
});

it('hands a refused operation over as an event with its errors', async () => {
  const connections = upstream();
  const events = await all(connections.subscribe('ticks', { query: 'subscription { nope }', variables: {} }));
  expect(events).toHaveLength(1);
  expect(events[0].errors?.[0].message).toMatch(/nope/);
  await connections.close();
});

it('throws UpstreamClosedError, naming the subgraph and the close, when the connection drops mid-stream', async () => {
  const connections = upstream();
  const seen: UpstreamEvent[] = [];
  const failure = (async () => {
    for await (const event of connections.subscribe('ticks', { query, variables: { count: 5, intervalMs: 10, dropAt: 3 } })) seen.push(event);
  })();
  await expect(failure).rejects.toThrow(UpstreamClosedError);
  await expect(failure).rejects.toThrow(/^the ticks service ended the subscription: connection closed \(1006/);
  expect(seen.map((e) => e.data)).toEqual([{ ticks: { n: 1 } }, { ticks: { n: 2 } }]);
  await connections.close();
});
