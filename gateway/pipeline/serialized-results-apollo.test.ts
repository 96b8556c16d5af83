/**
 * serializedResults in a real gateway (Apollo Server, the gateway's plugin
 * and HTTP handler): Apollo Server hands plugins a copy of the context, so
 * the bytes noted by the plugin must still be found by the handler (they
 * were not, and every response was encoded again from its text).
 */
import { startTestGateway, type TestGateway } from '../testing/gateway-on-port-0';
import { serializedResults } from './serialized-results';

let gateway: TestGateway;
const bytesFor = jest.spyOn(serializedResults, 'bytesFor');

beforeAll(async () => {
  gateway = await startTestGateway();
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  bytesFor.mockRestore();
});

const post = (query: string) => fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });

it('sends the bytes serialized for the result, found from the copy of the context Apollo Server gave the plugin', async () => {
  bytesFor.mockClear();
  const response = await post('{ __typename }');
  expect(await response.json()).toEqual({ data: { __typename: 'Query' } });
  expect(bytesFor.mock.results.map((r) => Buffer.isBuffer(r.value))).toEqual([true]);
});

it('sends the text of a result with errors, which is not shared', async () => {
  bytesFor.mockClear();
  const response = await post('{ nope }');
  expect(response.status).toBe(400);
  // A validation failure never reaches willSendResponse with data: what goes out is Apollo Server's own text.
  expect(bytesFor.mock.results.map((r) => typeof r.value)).toEqual(['string']);
});
