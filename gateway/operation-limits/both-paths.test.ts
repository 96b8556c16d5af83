/**
 * The same operation limits on both paths of a real gateway: a subscription
 * beyond a limit is refused with OPERATION_LIMIT whether Apollo Server gets it
 * (a plain POST) or the gateway runs it (graphql-ws, multipart HTTP), at the
 * source stage (its size) and once resolved (its aliases).
 */
import { overHttp, overMultipart, overWebSocket, startTestGateway, type TestGateway } from '../testing/gateway-on-port-0';

let gateway: TestGateway;
let token: string;
beforeAll(async () => {
  gateway = await startTestGateway({ GATEWAY_MAX_DOCUMENT_BYTES: '256', GATEWAY_MAX_ALIASES: '0' });
  token = await gateway.token(['inference:invoke']);
});
afterAll(() => gateway?.stop());

const variables = { i: { messages: [{ role: 'user', content: 'hi' }] } };
const aliased = { query: 'subscription($i: CompletionInput!) { stream: completionStream(input: $i) { delta } }', variables };
const oversized = { query: `subscription($i: CompletionInput!) { completionStream(input: $i) { delta } } # ${'x'.repeat(256)}`, variables };

it.each([
  ['too many aliases, once resolved', aliased],
  ['too large a document, before parsing', oversized],
])('refuses %s with OPERATION_LIMIT on HTTP, graphql-ws and multipart alike', async (_, operation) => {
  expect(await overHttp(gateway.url, operation, token)).toEqual({ status: 400, codes: ['OPERATION_LIMIT'] });
  expect(await overWebSocket(gateway.url, operation, token)).toEqual(['OPERATION_LIMIT']);
  expect(await overMultipart(gateway.url, operation, token)).toEqual({ status: 400, codes: ['OPERATION_LIMIT'] });
});
