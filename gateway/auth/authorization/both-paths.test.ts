/**
 * Authorization on both paths of a real gateway: a subscription whose root
 * field the caller may not see (`completionStream` requires
 * inference:invoke) is refused with the same code whether Apollo Server gets
 * it (a plain POST: answered without execution) or the gateway runs it
 * (graphql-ws, multipart HTTP: refused before anything is planned).
 */
import { overHttp, overMultipart, overWebSocket, startTestGateway, type TestGateway } from '../../testing/gateway-on-port-0';

let gateway: TestGateway;
beforeAll(async () => {
  gateway = await startTestGateway();
});
afterAll(() => gateway?.stop());

const operation = { query: 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', variables: { i: { messages: [{ role: 'user', content: 'hi' }] } } };

it('refuses a signed-in caller without the scope with FORBIDDEN on HTTP, graphql-ws and multipart alike', async () => {
  const token = await gateway.token(['knowledge:read']);
  expect((await overHttp(gateway.url, operation, token)).codes).toEqual(['FORBIDDEN']);
  expect(await overWebSocket(gateway.url, operation, token)).toEqual(['FORBIDDEN']);
  expect(await overMultipart(gateway.url, operation, token)).toEqual({ status: 403, codes: ['FORBIDDEN'] });
});

it('refuses an anonymous caller with UNAUTHENTICATED on every path', async () => {
  expect((await overHttp(gateway.url, operation)).codes).toEqual(['UNAUTHENTICATED']);
  expect(await overWebSocket(gateway.url, operation)).toEqual(['UNAUTHENTICATED']);
  expect(await overMultipart(gateway.url, operation)).toEqual({ status: 401, codes: ['UNAUTHENTICATED'] });
});
