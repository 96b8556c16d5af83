/**
 * For the subscription transports' tests: a two-subgraph supergraph whose
 * `ticks` subgraph serves its subscription over graphql-ws on a real port
 * (0), recording what the gateway sent it and when a stream ended there,
 * and whose `labels` subgraph resolves an entity field of every event (in
 * process: what is tested is the plan's per-event fetch, not HTTP).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPrivateKey } from 'node:crypto';
import { composeServices } from '@apollo/composition';
import { LocalGraphQLDataSource } from '@apollo/gateway';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { parse } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { generateIdentityKeyPair, IdentitySigner } from '../../../lib/identity';
import type { Logger } from '../../../lib/log';
import { SignedIdentity, type GatewayContext } from '../../auth/context';
import { SubscriptionPlanner } from '../planner';
import { SubscriptionService } from '../subscription-service';

export const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

const link = `extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])`;
const ticksTypeDefs = parse(`
  ${link}
  type Query { hello: String }
  type Subscription {
    "Ticks 1..count, one every intervalMs; at dropAt the server drops every socket instead."
    ticks(count: Int!, intervalMs: Int = 0, dropAt: Int): Tick!
  }
  type Tick @key(fields: "id") { id: ID! n: Int! }
`);
const labelsTypeDefs = parse(`
  ${link}
  type Tick @key(fields: "id") { id: ID! label: String! }
`);

// Unref'd: a stream still waiting when a test ends must not hold the process.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** The `ticks` subgraph's graphql-ws server and what it saw. */
export class TicksSubgraph {
  /** `connection_init` payloads, one per upstream connection. */
  readonly connections: Record<string, unknown>[] = [];
  /** `subscribe` payloads' extensions, one per upstream subscription. */
  readonly subscriptions: Record<string, unknown>[] = [];
  /** Subscriptions the gateway unsubscribed from (`complete` messages it sent). */
  unsubscribed = 0;
  /** Upstream connections closed (by either side), which ends every subscription they carried. */
  disconnections = 0;
  url = '';
  private server!: Server;
  private wss!: WebSocketServer;

  async start(): Promise<void> {
    const wss = new WebSocketServer({ noServer: true });
    const schema = buildSubgraphSchema({
      typeDefs: ticksTypeDefs,
      resolvers: {
        Query: { hello: () => 'world' },
        Subscription: {
          ticks: {
            subscribe: async function* (_: unknown, args: { count: number; intervalMs: number; dropAt?: number }) {
              for (let n = 1; n <= args.count; n++) {
                if (args.intervalMs) await sleep(args.intervalMs);
                if (n === args.dropAt) for (const socket of wss.clients) socket.terminate();
                yield { ticks: { id: String(n), n } };
              }
            },
          },
        },
      } as never,
    });
    useServer(
      {
        schema,
        onConnect: (ctx) => void this.connections.push(ctx.connectionParams ?? {}),
        onSubscribe: (_ctx, _id, payload) => void this.subscriptions.push(payload.extensions ?? {}),
      },
      wss,
    );
    wss.on('connection', (socket) => {
      socket.on('message', (data) => {
        if ((JSON.parse(String(data)) as { type?: string }).type === 'complete') this.unsubscribed++;
      });
      socket.on('close', () => this.disconnections++);
    });
    this.wss = wss;
    this.server = createServer((_, res) => res.writeHead(404).end());
    this.server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/graphql`;
  }

  /** Waits until the gateway has unsubscribed from `count` subscriptions in all. */
  waitForUnsubscribed(count: number): Promise<void> {
    return this.waitFor(
      () => this.unsubscribed >= count,
      () => `expected the gateway to have unsubscribed ${count} times, but it has ${this.unsubscribed} times`,
    );
  }

  /** Waits until `count` upstream connections have closed in all. */
  waitForDisconnections(count: number): Promise<void> {
    return this.waitFor(
      () => this.disconnections >= count,
      () => `expected ${count} upstream connections to have closed, but ${this.disconnections} have`,
    );
  }

  private async waitFor(done: () => boolean, failure: () => string, timeoutMs = 2_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new Error(failure());
      await sleep(10);
    }
  }

  async stop(): Promise<void> {
    for (const socket of this.wss.clients) socket.terminate();
    await new Promise((resolve) => this.wss.close(resolve));
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The supergraph of `ticks` (at `ticksUrl`) and `labels`, its planner, and the data source of `labels`. */
export function ticksSupergraph(ticksUrl: string) {
  const composed = composeServices([
    { name: 'ticks', typeDefs: ticksTypeDefs, url: ticksUrl },
    { name: 'labels', typeDefs: labelsTypeDefs, url: 'http://labels.invalid/graphql' },
  ]);
  if (!composed.supergraphSdl) throw new Error(`the test supergraph does not compose: ${composed.errors?.map((e) => e.message).join('; ')}`);
  const labels = new LocalGraphQLDataSource(
    buildSubgraphSchema({ typeDefs: labelsTypeDefs, resolvers: { Tick: { __resolveReference: ({ id }: { id: string }) => ({ id, label: `tick ${id}` }) } } as never }),
  );
  return { planner: new SubscriptionPlanner(composed.supergraphSdl), services: { labels } };
}

const signer = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem));

export function callerContext(sub: string | null = 'ada'): GatewayContext {
  return { identity: new SignedIdentity({ sub, scopes: [] }, signer), requestId: 'test' };
}

/** A subscription service over the supergraph, with no features: what is tested is the transport. */
export function ticksService(ticks: TicksSubgraph, perConnection = 4): SubscriptionService {
  const { planner, services } = ticksSupergraph(ticks.url);
  return new SubscriptionService({ planner, services, urlOf: () => ticks.url, log: silent }, { perConnection });
}

export const TICKS = 'subscription($count: Int!, $intervalMs: Int, $dropAt: Int) { ticks(count: $count, intervalMs: $intervalMs, dropAt: $dropAt) { n label } }';
