/**
 * BillingClient's retry over a real HTTP server: a reservation whose pooled
 * keep-alive connection breaks under it (a billing replica killed with the
 * request in flight) is sent again on a connection of its own, not on
 * another pooled one that may lead to the same dead replica. Reservations
 * are idempotent by id, so sending one again is safe.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { BillingClient } from './billing-client';

let server: Server;
let client: BillingClient;
/** Connections that behave as a killed replica's: a request on one is dropped unanswered. */
const dead = new Set<Socket>();
/** Every connection the server has open. */
const open = new Set<Socket>();
let requestsOnDead = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (dead.has(req.socket)) {
      requestsOnDead++;
      req.socket.destroy();
      return;
    }
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      // Answered a little later, so that requests sent together each take a connection of their own.
      setTimeout(() => {
        const { reservationId } = JSON.parse(body) as { reservationId: string };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ reservationId, amountMicros: 1, expiresAt: Date.now() + 60_000, state: 'held' }));
      }, 20);
    });
  });
  server.on('connection', (socket: Socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = new BillingClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});

afterAll(async () => {
  client.close();
  await new Promise((resolve) => server.close(resolve));
});

const reserve = (reservationId: string) => client.reserve('signed identity', { reservationId, model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 });

it('sends a reservation again on a new connection when its pooled one breaks, not on another pooled one', async () => {
  // Three pooled keep-alive connections, then every one of them leads to a dead replica.
  await Promise.all(['r1', 'r2', 'r3'].map(reserve));
  expect(open.size).toBe(3);
  for (const socket of open) dead.add(socket);

  const held = await reserve('r4');
  expect(held).toMatchObject({ reservationId: 'r4', state: 'held' });
  // One attempt met a dead connection; the second went on a connection of its own.
  expect(requestsOnDead).toBe(1);
});
