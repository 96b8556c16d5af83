/**
 * The per-connection limit of SubscriptionService over the project's
 * real supergraph. Subscriptions here are never iterated, so nothing is
 * sent upstream: what is tested is the admission and the release.
 */
import { supergraphForGateway } from '../auth/authorization/gateway-supergraph';
import { generateIdentityKeyPair, IdentitySigner } from '../../lib/identity';
import { createLogger } from '../../lib/log';
import { createPrivateKey } from 'node:crypto';
import { SignedIdentity, type GatewayContext } from '../auth/context';
import { SubscriptionPlanner } from './planner';
import { SubscriptionService, type PreparedOperation } from './subscription-service';
import { composeSupergraph, readSupergraphConfig } from '../supergraph';

const planner = new SubscriptionPlanner(supergraphForGateway(composeSupergraph(readSupergraphConfig('supergraph.yaml'))));
const signer = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem));
const context = (sub: string | null): GatewayContext => ({ identity: new SignedIdentity({ sub, scopes: [] }, signer), requestId: 'test' });
const request = { query: 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', variables: { i: { messages: [{ role: 'user', content: 'hi' }] } } };

function service() {
  return new SubscriptionService({ planner, services: {}, urlOf: () => 'http://127.0.0.1:1/graphql', log: createLogger({ test: 'limits' }) }, { perConnection: 2 });
}

async function start(subscriptions: SubscriptionService, connection: ReturnType<SubscriptionService['openConnection']>, ctx: GatewayContext) {
  const prepared = subscriptions.prepare(request) as PreparedOperation;
  return subscriptions.start(connection, prepared, request, ctx);
}

const refusal = (result: unknown) => (Array.isArray(result) ? result[0].extensions : undefined);

it('refuses past the per-connection limit, then admits again once one ends', async () => {
  const subscriptions = service();
  const ada = context('ada');
  const connection = subscriptions.openConnection(ada);
  const first = await start(subscriptions, connection, ada);
  await start(subscriptions, connection, ada);
  expect(refusal(await start(subscriptions, connection, ada))).toEqual({ code: 'RATE_LIMITED', limit: 2, scope: 'connection' });
  await (first as AsyncGenerator).return(undefined); // ended before its first event: still released
  expect(Array.isArray(await start(subscriptions, connection, ada))).toBe(false);
  await connection.close();
});

// The per-user limit is the rate limiter's, shared by every gateway: gateway/rate-limits/rate-limits-subscriptions.test.ts.

it('reports parse, validation and variable errors with their codes', () => {
  const subscriptions = service();
  expect((subscriptions.prepare({ query: 'subscription {' }) as Error[])[0]).toMatchObject({ extensions: { code: 'GRAPHQL_PARSE_FAILED' } });
  expect((subscriptions.prepare({ query: 'subscription { nope }' }) as Error[])[0]).toMatchObject({ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } });
  const badVariables = subscriptions.prepare({ query: request.query, variables: { i: { messages: 'x' } } }) as Error[];
  expect(badVariables[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
});
