/**
 * Rate limits where they meet the gateway's pieces: SubscriptionService's
 * admission (the connection's limit, the caller's streams shared by two
 * services on one store, requests and tokens), the subscription gate's token
 * correction from a stream's usage, and the usage meter around subgraph
 * fetches. Subscriptions here are never iterated, so nothing is sent
 * upstream. The store is the in-memory one (ioredis-mock: one store per
 * process, shared by every connection, with Lua).
 */
import { createPrivateKey, randomUUID } from 'node:crypto';
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLDataSourceRequestKind } from '@apollo/gateway/dist/datasources/types';
import type { GraphQLError } from 'graphql';
import { generateIdentityKeyPair, IdentitySigner } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { supergraphForGateway } from '../auth/authorization/gateway-supergraph';
import { SignedIdentity, type GatewayContext } from '../auth/context';
import { RateLimiter } from './limiter';
import { RatePlans } from './plans';
import { isStreamRefusal, SubscriptionGate } from './subscription-gate';
import { TokenChargeCorrection } from './token-charge-correction';
import { GatewayPipeline } from '../pipeline/pipeline';
import { SubscriptionPlanner } from '../subscriptions/planner';
import { rateLimits } from './feature';
import { SubscriptionService, type PreparedOperation } from '../subscriptions/subscription-service';
import { composeSupergraph, readSupergraphConfig } from '../supergraph';
import { parse, print } from 'graphql';
import { withStreamUsage } from './token-charge-correction';

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const planner = new SubscriptionPlanner(supergraphForGateway(composeSupergraph(readSupergraphConfig('supergraph.yaml'))));
const signer = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem));
const context = (sub: string | null, ip = '10.0.0.1'): GatewayContext => ({ identity: new SignedIdentity({ sub, scopes: [], ip }, signer), requestId: 'test' });
const STREAM = 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta usage { totalTokens } } }';
const request = (maxTokens?: number) => ({ query: STREAM, variables: { i: { messages: [{ role: 'user', content: 'hi' }], ...(maxTokens ? { maxTokens } : {}) } } });

function limiter(plans: string): RateLimiter {
  return new RateLimiter(connectRedis('memory://', silent), { plans: RatePlans.parse(plans, 32), onRedisError: 'closed', redisTimeoutMs: 1_000, leaseMs: 30_000 }, silent);
}

function service(rateLimiter: RateLimiter, perConnection = 2) {
  return new SubscriptionService(
    { planner, services: {}, urlOf: () => 'http://127.0.0.1:1/graphql', log: silent, pipeline: new GatewayPipeline([rateLimits(rateLimiter, new TokenChargeCorrection())]) },
    { perConnection },
  );
}

async function start(subscriptions: SubscriptionService, connection: ReturnType<SubscriptionService['openConnection']>, ctx: GatewayContext, maxTokens?: number) {
  const prepared = subscriptions.prepare(request(maxTokens)) as PreparedOperation;
  return subscriptions.start(connection, prepared, request(maxTokens), ctx);
}

const refusal = (result: unknown) => (Array.isArray(result) ? (result as GraphQLError[])[0].extensions : undefined);

it('refuses past the per-connection limit, even for starts racing each other, and admits again once one ends', async () => {
  const subscriptions = service(limiter('default:streams=100'));
  const ada = context(`ada-${randomUUID()}`);
  const connection = subscriptions.openConnection(ada);
  const results = await Promise.all([1, 2, 3].map(() => start(subscriptions, connection, ada)));
  expect(results.filter((r) => !Array.isArray(r))).toHaveLength(2);
  expect(refusal(results.find(Array.isArray))).toEqual({ code: 'RATE_LIMITED', limit: 2, scope: 'connection' });
  await (results.find((r) => !Array.isArray(r)) as AsyncGenerator).return(undefined); // ended before its first event: still released
  expect(Array.isArray(await start(subscriptions, connection, ada))).toBe(false);
  await connection.close();
});

it("shares a user's live streams between gateways, counts anonymous callers per IP, and frees a slot when a stream ends", async () => {
  const shared = limiter('default:streams=2; anonymous:streams=1');
  const [one, two] = [service(shared, 10), service(limiter('default:streams=2; anonymous:streams=1'), 10)];
  const ada = context(`ada-${randomUUID()}`);
  const first = await start(one, one.openConnection(ada), ada);
  await start(two, two.openConnection(ada), ada);
  const third = await start(two, two.openConnection(ada), ada);
  expect(refusal(third)).toMatchObject({ code: 'RATE_LIMITED', limit: 2, scope: 'user', kind: 'streams' });
  const grace = context(`grace-${randomUUID()}`);
  expect(Array.isArray(await start(two, two.openConnection(grace), grace))).toBe(false);

  const ip = `10.9.${Math.floor(Math.random() * 250)}.1`;
  expect(Array.isArray(await start(one, one.openConnection(context(null, ip)), context(null, ip)))).toBe(false);
  expect(refusal(await start(two, two.openConnection(context(null, ip)), context(null, ip)))).toMatchObject({ scope: 'ip', kind: 'streams' });

  await (first as AsyncGenerator).return(undefined);
  await new Promise((resolve) => setTimeout(resolve, 20)); // the release is sent without being awaited
  expect(Array.isArray(await start(two, two.openConnection(ada), ada))).toBe(false);
});

it('counts a subscription start as a request, with its maxTokens, and gives back the stream slot when refused', async () => {
  const subscriptions = service(limiter('default:rpm=1,tpm=300,streams=1'), 10);
  const ada = context(`ada-${randomUUID()}`);
  expect(refusal(await start(subscriptions, subscriptions.openConnection(ada), ada, 301))).toMatchObject({ code: 'RATE_LIMITED', kind: 'tpm', limit: 300, retryAfter: null });
  const admitted = await start(subscriptions, subscriptions.openConnection(ada), ada, 100); // the refused one holds no stream slot
  expect(Array.isArray(admitted)).toBe(false);
  await (admitted as AsyncGenerator).return(undefined);
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(refusal(await start(subscriptions, subscriptions.openConnection(ada), ada, 1))).toMatchObject({ kind: 'rpm', limit: 1 });
});

it('plans a stream with its usage selected under an alias of its own, whatever the client selected', () => {
  const planned = print(withStreamUsage(parse('subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }')));
  expect(planned).toContain('sluiceRateLimitUsage: usage {\n      totalTokens\n    }');
});

it("corrects a stream's token charge with the usage of its last chunk, removing the gateway's field, and keeps maxTokens without it", async () => {
  const rateLimiter = limiter('default:tpm=1000,streams=10');
  const gate = new SubscriptionGate(rateLimiter);
  const subscriptions = service(rateLimiter);
  const document = (subscriptions.prepare(request()) as PreparedOperation).document;
  const ada = context(`ada-${randomUUID()}`);
  const withUsage = await gate.admit(ada, document, undefined, { i: { maxTokens: 600 } });
  if (isStreamRefusal(withUsage)) throw new Error('expected admission');
  withUsage.observe({ data: { completionStream: { delta: 'a', sluiceRateLimitUsage: null } } });
  const last = { data: { completionStream: { delta: '', sluiceRateLimitUsage: { totalTokens: 40 } } as Record<string, unknown> } };
  withUsage.observe(last);
  expect(last.data.completionStream).toEqual({ delta: '' });
  withUsage.end();
  const without = await gate.admit(ada, document, undefined, { i: { maxTokens: 300 } });
  if (isStreamRefusal(without)) throw new Error('expected admission');
  without.observe({ data: { completionStream: { delta: 'a' } } });
  without.end();
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(await rateLimiter.admit(ada.identity.claims, 0)).toEqual({ admitted: true });
  expect(await rateLimiter.admit(ada.identity.claims, 1)).toMatchObject({ quota: { kind: 'tpm', remaining: 1000 - 40 - 300 - 1 } });
});

describe('TokenChargeCorrection', () => {
  const COMPLETE = 'mutation($input:CompletionInput!){complete(input:$input){text}}';

  /** A subgraph that records what it was sent and answers with `answer(query)`. */
  function subgraph(answer: (query: string) => Record<string, unknown>) {
    const sent: string[] = [];
    const source: GraphQLDataSource<GatewayContext> = {
      process: async (options) => {
        sent.push(options.request.query!);
        return { data: answer(options.request.query!) };
      },
    };
    return { source, sent };
  }

  const fetchFor = (ctx: GatewayContext, query: string, variables: Record<string, unknown> = {}) =>
    ({ kind: GraphQLDataSourceRequestKind.INCOMING_OPERATION, request: { query, variables }, context: ctx, incomingRequestContext: {} }) as unknown as GraphQLDataSourceProcessOptions<GatewayContext>;

  it('asks for the usage of each complete, strips it from the answer, and corrects the charge with it when the response is sent', async () => {
    const meter = new TokenChargeCorrection();
    const { source, sent } = subgraph(() => ({ complete: { text: 'hi', sluiceRateLimitUsage: { totalTokens: 37 } } }));
    const metered = meter.meter(source);
    const ctx = context('ada');
    const corrections: number[] = [];
    meter.expect(ctx, { tokens: 256, correct: async (real) => void corrections.push(real) });
    const response = await metered.process(fetchFor(ctx, COMPLETE, { input: { messages: [] } }));
    expect(sent[0]).toContain('sluiceRateLimitUsage: usage {');
    expect(response.data).toEqual({ complete: { text: 'hi' } });
    await meter.settle(ctx);
    await meter.settle(ctx);
    expect(corrections).toEqual([37]);
  });

  it('counts a failed completion as 0 and one whose usage is missing as its maxTokens', async () => {
    const meter = new TokenChargeCorrection();
    const ctx = context('ada');
    const corrections: number[] = [];
    meter.expect(ctx, { tokens: 200, correct: async (real) => void corrections.push(real) });
    const query = 'mutation($a:CompletionInput!,$b:CompletionInput!){a:complete(input:$a){text} b:complete(input:$b){text}}';
    const { source } = subgraph(() => ({ a: null, b: { text: 'x' } }));
    await meter.meter(source).process(fetchFor(ctx, query, { a: { maxTokens: 100 }, b: { maxTokens: 100 } }));
    await meter.settle(ctx);
    expect(corrections).toEqual([100]);
  });

  it('leaves fetches without a completion, and operations that were not charged, untouched', async () => {
    const meter = new TokenChargeCorrection();
    const { source, sent } = subgraph(() => ({ models: [] }));
    const ctx = context('ada');
    meter.expect(ctx, { tokens: 10, correct: async () => {} });
    await meter.meter(source).process(fetchFor(ctx, '{models{id}}'));
    await meter.meter(source).process(fetchFor(context('grace'), COMPLETE));
    expect(sent).toEqual(['{models{id}}', COMPLETE]);
  });
});
