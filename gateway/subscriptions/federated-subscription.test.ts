/**
 * executeFederatedSubscription over a real graphql-ws subgraph on port 0:
 * each event of the owning subgraph gets the other subgraph's fields through
 * the plan's per-event fetch; ending the generator unsubscribes upstream; a
 * connection dropped mid-stream ends it with the error, after the events
 * already sent.
 */
import { parse } from 'graphql';
import { executeFederatedSubscription } from './federated-subscription';
import { callerContext, silent, TICKS, TicksSubgraph, ticksSupergraph } from './testing/ticks-subgraphs';
import { UpstreamConnections, type UpstreamEvent } from './upstream';

const ticks = new TicksSubgraph();
beforeAll(() => ticks.start());
afterAll(() => ticks.stop());

function run(variables: Record<string, unknown>) {
  const { planner, services } = ticksSupergraph(ticks.url);
  const context = callerContext();
  const upstream = new UpstreamConnections(() => ticks.url, context.identity);
  const plan = planner.plan(parse(TICKS), undefined, 'ticks');
  return { upstream, events: executeFederatedSubscription({ planner, services, upstream, log: silent }, { plan, query: TICKS, variables, context }) };
}

it("completes every event with the other subgraph's fields, in order", async () => {
  const { upstream, events } = run({ count: 3 });
  const seen: UpstreamEvent[] = [];
  for await (const event of events) seen.push(event);
  expect(seen).toEqual([1, 2, 3].map((n) => ({ data: { ticks: { n, label: `tick ${n}` } } })));
  await upstream.close();
});

it('unsubscribes upstream when the client stops listening', async () => {
  const { upstream, events } = run({ count: 1000, intervalMs: 10 });
  const unsubscribed = ticks.unsubscribed;
  expect((await events.next()).value).toEqual({ data: { ticks: { n: 1, label: 'tick 1' } } });
  await events.return(undefined);
  await ticks.waitForUnsubscribed(unsubscribed + 1);
  await upstream.close();
});

it('ends with the error when the upstream connection drops mid-stream, after the events already sent', async () => {
  const { upstream, events } = run({ count: 5, intervalMs: 10, dropAt: 3 });
  const seen: UpstreamEvent[] = [];
  await expect(
    (async () => {
      for await (const event of events) seen.push(event);
    })(),
  ).rejects.toThrow(/^the ticks service ended the subscription: connection closed/);
  expect(seen.map((e) => e.data?.ticks)).toEqual([
    { n: 1, label: 'tick 1' },
    { n: 2, label: 'tick 2' },
  ]);
  await upstream.close();
});
