/**
 * Rate limits on both paths of a real gateway: a subscription whose
 * `maxTokens` can never fit the caller's tokens per minute is refused with
 * RATE_LIMITED whether Apollo Server gets it (a plain POST) or the gateway
 * runs it (graphql-ws, multipart HTTP), with 429 over HTTP.
 */
import { overHttp, overMultipart, overWebSocket, startTestGateway, type TestGateway } from '../testing/gateway-on-port-0';

let gateway: TestGateway;
let token: string;
beforeAll(async () => {
  gateway = await startTestGateway({ GATEWAY_RATE_LIMITS: 'default:tpm=100' });
  token = await gateway.token(['inference:invoke']);
});
afterAll(() => gateway?.stop());

it('refuses a subscription over the token limit with RATE_LIMITED on HTTP, graphql-ws and multipart alike', async () => {
  const operation = { query: 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', variables: { i: { messages: [{ role: 'user', content: 'hi' }], maxTokens: 500 } } };
  expect(await overHttp(gateway.url, operation, token)).toEqual({ status: 429, codes: ['RATE_LIMITED'] });
  expect(await overWebSocket(gateway.url, operation, token)).toEqual(['RATE_LIMITED']);
  expect(await overMultipart(gateway.url, operation, token)).toEqual({ status: 429, codes: ['RATE_LIMITED'] });
});
