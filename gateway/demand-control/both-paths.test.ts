/**
 * Demand control on both paths of a real gateway: a subscription over budget
 * (`completionStream` weighs 100) is refused with COST_LIMIT whether Apollo
 * Server gets it (a plain POST) or the gateway runs it (graphql-ws,
 * multipart HTTP).
 */
import { overHttp, overMultipart, overWebSocket, startTestGateway, type TestGateway } from '../testing/gateway-on-port-0';

let gateway: TestGateway;
let token: string;
beforeAll(async () => {
  gateway = await startTestGateway({ GATEWAY_MAX_COST: '50' });
  token = await gateway.token(['inference:invoke']);
});
afterAll(() => gateway?.stop());

it('refuses an over-budget subscription with COST_LIMIT on HTTP, graphql-ws and multipart alike', async () => {
  const operation = { query: 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', variables: { i: { messages: [{ role: 'user', content: 'hi' }] } } };
  expect(await overHttp(gateway.url, operation, token)).toEqual({ status: 400, codes: ['COST_LIMIT'] });
  expect(await overWebSocket(gateway.url, operation, token)).toEqual(['COST_LIMIT']);
  expect(await overMultipart(gateway.url, operation, token)).toEqual({ status: 400, codes: ['COST_LIMIT'] });
});
