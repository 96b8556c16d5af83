/**
 * Safelist mode on both paths of a real gateway: an unregistered subscription
 * is refused with PERSISTED_QUERY_NOT_IN_SAFELIST whether Apollo Server gets
 * it (a plain POST) or the gateway runs it (graphql-ws, multipart HTTP).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { overHttp, overMultipart, overWebSocket, startTestGateway, type TestGateway } from '../testing/gateway-on-port-0';
import { MANIFEST_FORMAT } from './safelist';

let gateway: TestGateway;
let token: string;
const dir = mkdtempSync(path.join(tmpdir(), 'sluice-safelist-'));
beforeAll(async () => {
  const manifest = path.join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ format: MANIFEST_FORMAT, version: 1, operations: [{ id: 'models', body: '{ models { id } }', name: 'Models', type: 'query' }] }));
  gateway = await startTestGateway({ GATEWAY_SAFELIST: 'true', GATEWAY_SAFELIST_FILE: manifest });
  token = await gateway.token(['inference:invoke']);
});
afterAll(async () => {
  await gateway?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('refuses an unregistered subscription with PERSISTED_QUERY_NOT_IN_SAFELIST on HTTP, graphql-ws and multipart alike', async () => {
  const operation = { query: 'subscription($i: CompletionInput!) { completionStream(input: $i) { delta } }', variables: { i: { messages: [{ role: 'user', content: 'hi' }] } } };
  expect(await overHttp(gateway.url, operation, token)).toEqual({ status: 400, codes: ['PERSISTED_QUERY_NOT_IN_SAFELIST'] });
  expect(await overWebSocket(gateway.url, operation, token)).toEqual(['PERSISTED_QUERY_NOT_IN_SAFELIST']);
  expect(await overMultipart(gateway.url, operation, token)).toEqual({ status: 400, codes: ['PERSISTED_QUERY_NOT_IN_SAFELIST'] });
});

it('refuses an unregistered id the same way on every path', async () => {
  const operation = { query: '', extensions: { persistedQuery: { version: 1, sha256Hash: 'unknown' } } };
  expect(await overHttp(gateway.url, operation, token)).toEqual({ status: 400, codes: ['PERSISTED_QUERY_NOT_IN_SAFELIST'] });
  expect(await overWebSocket(gateway.url, operation, token)).toEqual(['PERSISTED_QUERY_NOT_IN_SAFELIST']);
});
