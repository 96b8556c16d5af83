import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { codedError, ErrorCode } from './errors';
import { IDENTITY_HEADER, IdentitySigner, IdentityVerifier } from './identity';
import { internalRouter, RouteRefusal } from './internal-routes';
import { createLogger } from './log';

const keys = generateKeyPairSync('ed25519');
const signer = new IdentitySigner(keys.privateKey);

let server: Server;
let base: string;

beforeAll(async () => {
  const router = internalRouter(
    [
      {
        path: '/internal/echo',
        body: '{"word": "<string>"}',
        unavailable: 'the echo could not be heard',
        async handle(body, identity) {
          if (body.word === 'coded') throw codedError(ErrorCode.InsufficientBalance, 'not enough', { needed: 5 });
          if (body.word === 'refused') throw new RouteRefusal(ErrorCode.Conflict, 'already said');
          if (body.word === 'broken') throw new Error('the store is down');
          return { word: body.word, sub: identity.sub };
        },
      },
    ],
    { service: 'echo', verifier: new IdentityVerifier([keys.publicKey]), log: createLogger({ test: 'internal-routes' }) },
  );
  server = createServer((req, res) => {
    if (!router(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

async function post(body: string, identity = signer.sign({ sub: 'u1', scopes: [] }, ['echo'])) {
  const response = await fetch(`${base}/internal/echo`, { method: 'POST', headers: { [IDENTITY_HEADER]: identity }, body });
  return { status: response.status, cache: response.headers.get('cache-control'), body: await response.json() };
}

describe('internalRouter', () => {
  it("answers the handler's result with the verified identity, never cached, and leaves other paths alone", async () => {
    expect(await post('{"word": "hi"}')).toEqual({ status: 200, cache: 'no-store', body: { word: 'hi', sub: 'u1' } });
    expect((await fetch(`${base}/internal/other`, { method: 'POST' })).status).toBe(404);
  });

  it("answers refusals and coded GraphQL errors with their code's status, message and extensions", async () => {
    expect(await post('{"word": "coded"}')).toEqual({ status: 402, cache: 'no-store', body: { error: 'not enough', code: 'INSUFFICIENT_BALANCE', extensions: { needed: 5 } } });
    expect(await post('{"word": "refused"}')).toEqual({ status: 409, cache: 'no-store', body: { error: 'already said', code: 'CONFLICT' } });
  });

  it("answers an unexpected failure 503 with the route's message, not the error's", async () => {
    expect(await post('{"word": "broken"}')).toEqual({ status: 503, cache: 'no-store', body: { error: 'the echo could not be heard', code: 'SERVICE_UNAVAILABLE' } });
  });

  it('says what it expected of the method, identity, body and size', async () => {
    const get = await fetch(`${base}/internal/echo`);
    expect([get.status, get.headers.get('allow'), await get.json()]).toEqual([405, 'POST', { error: '/internal/echo expects POST, but got GET', code: 'BAD_USER_INPUT' }]);
    expect(await post('{"word": "hi"}', 'not-a-header')).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    expect(await post('{"word": "hi"}', signer.sign({ sub: 'u1', scopes: [] }, ['auth']))).toEqual({
      status: 401,
      cache: 'no-store',
      body: { error: 'x-sluice-identity header was issued for auth; expected one issued for echo', code: 'UNAUTHENTICATED' },
    });
    expect(await post('[1]')).toMatchObject({ status: 400, body: { error: '/internal/echo expects a JSON object {"word": "<string>"}' } });
    expect(await post('{')).toMatchObject({ status: 400, body: { error: '/internal/echo expects a JSON body {"word": "<string>"}' } });
    expect(await post(JSON.stringify({ word: 'x'.repeat(5000) }))).toMatchObject({ status: 413, body: { error: '/internal/echo expects a body of at most 4096 bytes', code: 'PAYLOAD_TOO_LARGE' } });
  });
});
