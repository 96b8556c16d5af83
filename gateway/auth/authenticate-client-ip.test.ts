/**
 * The caller's address that goes into the identity's `ip` claim, read from
 * real HTTP requests to a local server.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientIp } from './credentials/client-ip';

let server: Server;
let url: string;
beforeAll(async () => {
  // Each request says which mode to read it in, and gets back what clientIp made of it.
  server = createServer((req, res) => res.end(JSON.stringify(clientIp(req, req.headers['x-test-trust'] === 'yes') ?? null)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

async function ipSeen(trust: boolean, forwardedFor?: string): Promise<string | null> {
  const headers: Record<string, string> = { 'x-test-trust': trust ? 'yes' : 'no' };
  if (forwardedFor !== undefined) headers['x-forwarded-for'] = forwardedFor;
  return (await fetch(url, { headers })).json() as Promise<string | null>;
}

it('is the TCP peer, and X-Forwarded-For is ignored unless the proxy is trusted (a client could send any address)', async () => {
  await expect(ipSeen(false)).resolves.toBe('127.0.0.1');
  await expect(ipSeen(false, '203.0.113.7')).resolves.toBe('127.0.0.1');
});

it("behind a trusted proxy, is the last X-Forwarded-For entry: the one the proxy appended, not the client's own claims before it", async () => {
  await expect(ipSeen(true, '203.0.113.7')).resolves.toBe('203.0.113.7');
  await expect(ipSeen(true, '10.9.9.9, 198.51.100.20')).resolves.toBe('198.51.100.20');
  await expect(ipSeen(true, '2001:db8::1')).resolves.toBe('2001:db8::1');
});

it('falls back to the peer when a trusted X-Forwarded-For is missing or not an address', async () => {
  await expect(ipSeen(true)).resolves.toBe('127.0.0.1');
  await expect(ipSeen(true, '198.51.100.20, not-an-ip')).resolves.toBe('127.0.0.1');
});

it('reports an IPv4 peer of a dual-stack socket in its IPv4 form, so one caller has one address', () => {
  const request = (remoteAddress: string) => ({ headers: {}, socket: { remoteAddress } }) as unknown as IncomingMessage;
  expect(clientIp(request('::ffff:192.0.2.5'), false)).toBe('192.0.2.5');
  expect(clientIp(request('2001:db8::5'), false)).toBe('2001:db8::5');
});
