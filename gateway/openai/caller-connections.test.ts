import type { GatewayContext } from '../auth/context';
import { SubscriptionConnection, type SubscriptionService } from '../subscriptions/subscription-service';
import type { UpstreamConnections } from '../subscriptions/upstream';
import { CallerConnections } from './caller-connections';

/** Counts the upstream connection sets opened and closed. */
function countingService() {
  const counts = { opened: 0, closed: 0 };
  const service = {
    openConnection: () => {
      counts.opened++;
      return new SubscriptionConnection({ close: async () => void counts.closed++ } as UpstreamConnections);
    },
  } as unknown as SubscriptionService;
  return { counts, service };
}

const caller = (sub: string, scopes = ['inference:invoke']) => ({ identity: { claims: { sub, scopes, keyId: 'k', sessionId: null, ip: '127.0.0.1' } } }) as unknown as GatewayContext;

it("shares one upstream connection set between a caller's live streams, each its own SubscriptionConnection, and not between callers", () => {
  const { counts, service } = countingService();
  const connections = new CallerConnections(service);
  const a = connections.acquire(caller('u1'));
  const b = connections.acquire(caller('u1', ['inference:invoke']));
  const other = connections.acquire(caller('u2'));
  const narrower = connections.acquire(caller('u1', []));
  expect(counts.opened).toBe(3);
  expect(a.connection).not.toBe(b.connection);
  expect(a.connection.upstream).toBe(b.connection.upstream);
  expect(other.connection.upstream).not.toBe(a.connection.upstream);
  expect(narrower.connection.upstream).not.toBe(a.connection.upstream);
  for (const c of [a, b, other, narrower]) c.release();
});

it('closes the shared set a while after its last stream ends, and reuses it when another starts within that while', async () => {
  const { counts, service } = countingService();
  const connections = new CallerConnections(service);
  const first = connections.acquire(caller('u1'));
  first.release();
  first.release(); // twice: counted once
  const second = connections.acquire(caller('u1'));
  expect(counts.opened).toBe(1);
  second.release();
  await new Promise((r) => setTimeout(r, 2_200));
  expect(counts.closed).toBe(1);
  connections.acquire(caller('u1')).release();
  expect(counts.opened).toBe(2);
});
