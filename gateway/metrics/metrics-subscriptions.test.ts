/**
 * The live-subscriptions gauge as the metrics feature moves it on the
 * subscription path. The subscriptions are never iterated, so nothing is sent
 * upstream.
 */
import { createPrivateKey } from 'node:crypto';
import { generateIdentityKeyPair, IdentitySigner } from '../../lib/identity';
import { createLogger } from '../../lib/log';
import { supergraphForGateway } from '../auth/authorization/gateway-supergraph';
import { SignedIdentity, type GatewayContext } from '../auth/context';
import { GatewayPipeline } from '../pipeline/pipeline';
import { operationMetrics } from './feature';
import { gatewayMetrics } from './gateway-metrics';
import { SubscriptionPlanner } from '../subscriptions/planner';
import { SubscriptionService, type PreparedOperation } from '../subscriptions/subscription-service';
import { composeSupergraph, readSupergraphConfig } from '../supergraph';

const planner = new SubscriptionPlanner(supergraphForGateway(composeSupergraph(readSupergraphConfig('supergraph.yaml'))));
const signer = new IdentitySigner(createPrivateKey(generateIdentityKeyPair().privateKeyPem));
const context: GatewayContext = { identity: new SignedIdentity({ sub: 'ada', scopes: [] }, signer), requestId: 'metrics' };
const request = { query: 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', variables: { i: { messages: [{ role: 'user', content: 'hi' }] } } };

async function live(): Promise<number> {
  const { values } = await gatewayMetrics.registry.getSingleMetric('sluice_gateway_live_subscriptions')!.get();
  return values[0]?.value ?? 0;
}

it('counts a subscription from its start to its end, and not one refused', async () => {
  const log = createLogger({ test: 'metrics' });
  const pipeline = new GatewayPipeline([operationMetrics(gatewayMetrics, log)]);
  const subscriptions = new SubscriptionService({ planner, services: {}, urlOf: () => 'http://127.0.0.1:1/graphql', log, pipeline }, { perConnection: 1 });
  const connection = subscriptions.openConnection(context);
  const prepared = subscriptions.prepare(request) as PreparedOperation;
  const before = await live();
  const first = await subscriptions.start(connection, prepared, request, context);
  expect(Array.isArray(first)).toBe(false);
  expect(await live()).toBe(before + 1);
  expect(Array.isArray(await subscriptions.start(connection, prepared, request, context))).toBe(true); // past perConnection
  expect(await live()).toBe(before + 1);
  await (first as AsyncGenerator).return(undefined);
  expect(await live()).toBe(before);
  await connection.close();
});
