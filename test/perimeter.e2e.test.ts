/**
 * The attacker's suite (issue 15): the whole stack as `npm start` runs it,
 * attacked from inside the network by a caller that holds none of its keys —
 * raw HTTP, gRPC, WebSocket and Redis clients that send only what the
 * attacker has. Every attempt must be refused with a clear code, change
 * nothing (the models stay loaded, the balance and the session keys are as
 * they were), and the legitimate path must still work in the same run.
 *
 * Where an attack needs something an insider could have captured (an
 * identity header that has since expired, one the gateway sent to another
 * subgraph, another service's Redis password), the test, as the stack's
 * operator, makes it from the stack's own secrets.
 */
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import os from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { createClient } from 'graphql-ws';
import Redis, { type RedisOptions } from 'ioredis';
import WebSocket from 'ws';
import { RESERVATIONS_PATH } from '../lib/billing-client';
import { IDENTITY_HEADER, IdentitySigner, type IdentityClaims } from '../lib/identity';
import { identityAudience } from '../lib/service-calls';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

const MODEL = 'sluice-embed';
const EMBED = '{ embed(texts: ["perimeter"]) { index dimensions } }';
const BALANCE = '{ me { id balance { available } } }';

let stack: TestStack;
let token: string;
let userId: string;
let balanceBefore: number;
let sessionKeysBefore: Record<string, string>;
let admin: Redis;
const opened: Array<{ close(): unknown }> = [];
const redisClients: Redis[] = [];

const attackerTriton = () => track(new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 5_000, ''));
const operatorTriton = () => track(new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 5_000, stack.env.INFERENCE_GPU_SERVER_KEY));
const subgraphUrl = (name: 'auth' | 'billing' | 'knowledge' | 'inference') => `http://127.0.0.1:${stack.ports[name]}/graphql`;
const adminClaims = (): IdentityClaims => ({ sub: userId, scopes: ['admin', 'billing:read', 'inference:invoke', 'knowledge:read', 'knowledge:write'] });
/** The header the gateway would send `subgraph` for `claims`, as an insider could capture it there. */
const capturedAt = (subgraph: string, claims = adminClaims(), signer = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY))) => signer.sign(claims, identityAudience(subgraph));

function track<T extends { close(): unknown }>(client: T): T {
  opened.push(client);
  return client;
}

function redisClient(url: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, options);
  client.on('error', () => undefined);
  redisClients.push(client);
  return client;
}

async function balance(): Promise<number> {
  const res = await gql(stack.gatewayUrl, BALANCE, {}, bearer(token));
  expect(res.errors).toBeUndefined();
  return Number(res.data!.me.balance.available);
}

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: number; details?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('the attack was expected to be refused but succeeded');
}

beforeAll(async () => {
  stack = await startTestStack({ GATEWAY_WORKERS: '1' });
  admin = redisClient(stack.redisUrl);
  const res = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "P") { token } }', { e: uniqueEmail('perimeter') });
  token = res.data!.signUp.token;
  userId = (await gql(stack.gatewayUrl, BALANCE, {}, bearer(token))).data!.me.id;
  balanceBefore = await balance();
  sessionKeysBefore = await admin.hgetall('auth:{session-keys}');
}, 180_000);

afterAll(async () => {
  for (const client of opened) client.close();
  for (const client of redisClients) client.disconnect();
  await stack?.stop();
}, 60_000);

describe('the gpu-server', () => {
  it('is bound to loopback only', async () => {
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal);
    expect(stack.env.GPU_SERVER_HOST).toBe('127.0.0.1');
    if (external) {
      const refused = await rejection(fetch(`http://${external.address}:${stack.ports.gpuHttp}/v2/health/ready`, { signal: AbortSignal.timeout(2_000) }));
      expect((refused.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    }
  });

  it("refuses unload and load over HTTP without the key (403, Triton's message), and the model stays loaded", async () => {
    for (const action of ['unload', 'load']) {
      const res = await fetch(`http://127.0.0.1:${stack.ports.gpuHttp}/v2/repository/models/${MODEL}/${action}`, { method: 'POST' });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({ error: "This API is restricted, expecting header 'sluice-gpu-key'" });
    }
    expect((await fetch(`http://127.0.0.1:${stack.ports.gpuHttp}/v2/models/${MODEL}/ready`)).status).toBe(200);
  });

  it("refuses RepositoryModelUnload and inference over gRPC without the key (UNAVAILABLE, Triton's message)", async () => {
    const triton = attackerTriton();
    const restricted = "This protocol is restricted, expecting header 'triton-grpc-protocol-sluice-gpu-key'";
    expect(await rejection(triton.repositoryModelUnload(MODEL))).toMatchObject({ code: grpc.status.UNAVAILABLE, details: restricted });
    expect(await rejection(triton.modelInfer({ model_name: MODEL, inputs: [] }))).toMatchObject({ code: grpc.status.UNAVAILABLE, details: restricted });
    expect(await rejection(triton.repositoryIndex())).toMatchObject({ code: grpc.status.UNAVAILABLE, details: restricted });
    // A guessed key is no key.
    const guess = track(new TritonClient(`127.0.0.1:${stack.ports.gpuGrpc}`, 5_000, 'sluice-gpu-key=guess'));
    expect(await rejection(guess.modelConfig(MODEL))).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(await triton.modelReady(MODEL)).toEqual({ ready: true });
  });

  it('refuses inference over HTTP without the key: no account, no bill, no GPU', async () => {
    const res = await fetch(`http://127.0.0.1:${stack.ports.gpuHttp}/v2/models/${MODEL}/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], data: ['free compute'] }] }),
    });
    expect(res.status).toBe(403);
  });
});

describe('direct subgraph calls', () => {
  const topUp = 'mutation($u: ID!) { topUp(userId: $u, amountMicros: 1000000000, idempotencyKey: "perimeter-attack") { available } }';

  it('refuse no identity, a replayed expired identity and a forged one with 401 UNAUTHENTICATED', async () => {
    const operator = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY));
    const forger = new IdentitySigner(generateKeyPairSync('ed25519').privateKey);
    const attempts: Array<[Record<string, string>, string]> = [
      [{}, `missing ${IDENTITY_HEADER} header`],
      [{ [IDENTITY_HEADER]: operator.sign(adminClaims(), identityAudience('inference'), Date.now() - 10 * 60_000) }, `${IDENTITY_HEADER} header expired at`],
      [{ [IDENTITY_HEADER]: forger.sign(adminClaims(), identityAudience('inference')) }, `${IDENTITY_HEADER} header has an invalid signature`],
    ];
    for (const [headers, message] of attempts) {
      for (const url of [subgraphUrl('billing'), subgraphUrl('inference')]) {
        const res = await gql(url, url.includes(String(stack.ports.billing)) ? topUp : '{ models { id } }', { u: userId }, headers);
        expect(res.status).toBe(401);
        expect(res.errors![0]).toMatchObject({ message: expect.stringContaining(message), extensions: { code: 'UNAUTHENTICATED' } });
      }
    }
  });

  it('refuse a graphql-ws connection with an expired identity (4401), and close one whose identity expires without renewal (4401)', async () => {
    const url = subgraphUrl('inference').replace(/^http/, 'ws');
    const operator = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY), 1);
    const closeOf = (header: string) =>
      new Promise<{ code: number; reason: string }>((resolve) => {
        const client = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { [IDENTITY_HEADER]: header }, onNonLazyError: () => undefined });
        client.on('closed', (event) => {
          resolve(event as { code: number; reason: string });
          void client.dispose();
        });
      });
    const replayed = await closeOf(operator.sign(adminClaims(), identityAudience('inference'), Date.now() - 10 * 60_000));
    expect(replayed).toMatchObject({ code: 4401, reason: expect.stringContaining('expired') });

    const started = Date.now();
    const expiring = await closeOf(operator.sign(adminClaims(), identityAudience('inference')));
    expect(expiring).toMatchObject({ code: 4401, reason: expect.stringContaining('expired') });
    // Its lifetime (1 s) plus the tolerated skew, not at once.
    expect(Date.now() - started).toBeGreaterThan(1_000);
  }, 30_000);

  it("refuse a subgraph's identity used at another subgraph (audience) with 401 UNAUTHENTICATED naming both, over HTTP and internal routes", async () => {
    // What the gateway sends auth, presented to billing: an admin's top-up, and a reservation on billing's internal route.
    const fromAuth = capturedAt('auth');
    const toBilling = await gql(subgraphUrl('billing'), topUp, { u: userId }, { [IDENTITY_HEADER]: fromAuth });
    expect(toBilling.status).toBe(401);
    expect(toBilling.errors![0]).toMatchObject({ message: `${IDENTITY_HEADER} header was issued for auth; expected one issued for billing`, extensions: { code: 'UNAUTHENTICATED' } });
    const reserve = await fetch(`http://127.0.0.1:${stack.ports.billing}${RESERVATIONS_PATH}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: fromAuth },
      body: JSON.stringify({ reservationId: 'perimeter-attack', model: 'sluice-chat', promptTokens: 1, maxCompletionTokens: 1 }),
    });
    expect({ status: reserve.status, body: await reserve.json() }).toEqual({
      status: 401,
      body: { error: `${IDENTITY_HEADER} header was issued for auth; expected one issued for billing`, code: 'UNAUTHENTICATED' },
    });
    // What the gateway sends knowledge reaches inference and billing through it, never auth; inference's never reaches knowledge.
    const toAuth = await gql(subgraphUrl('auth'), '{ me { id } }', {}, { [IDENTITY_HEADER]: capturedAt('knowledge') });
    expect(toAuth.status).toBe(401);
    expect(toAuth.errors![0]).toMatchObject({
      message: `${IDENTITY_HEADER} header was issued for knowledge, inference, billing; expected one issued for auth`,
      extensions: { code: 'UNAUTHENTICATED' },
    });
    const toKnowledge = await gql(subgraphUrl('knowledge'), '{ search(query: "x", k: 1) { score } }', {}, { [IDENTITY_HEADER]: capturedAt('inference') });
    expect(toKnowledge.status).toBe(401);
    expect(toKnowledge.errors![0]).toMatchObject({
      message: `${IDENTITY_HEADER} header was issued for inference, billing; expected one issued for knowledge`,
      extensions: { code: 'UNAUTHENTICATED' },
    });
  });

  it("refuse another subgraph's identity on a graphql-ws connection (4401) and on a subscription (UNAUTHENTICATED)", async () => {
    const url = subgraphUrl('inference').replace(/^http/, 'ws');
    const connect = (header: string) =>
      createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { [IDENTITY_HEADER]: header }, onNonLazyError: () => undefined });
    const refused = connect(capturedAt('auth'));
    const closed = await new Promise<{ code: number; reason: string }>((resolve) => refused.on('closed', (event) => resolve(event as { code: number; reason: string })));
    await refused.dispose();
    expect(closed).toEqual(expect.objectContaining({ code: 4401, reason: `Unauthorized: ${IDENTITY_HEADER} header was issued for auth; expected one issued for inference` }));

    // A connection opened with inference's own identity, then a subscription signed for auth.
    const connection = connect(capturedAt('inference'));
    try {
      const errors = await new Promise<unknown>((resolve) =>
        connection.subscribe(
          { query: 'subscription { completionStream(input: { messages: [{ role: "user", content: "free" }], maxTokens: 1 }) { delta } }', extensions: { [IDENTITY_HEADER]: capturedAt('auth') } },
          { next: () => resolve('an event'), error: resolve, complete: () => resolve('completed') },
        ),
      );
      expect(errors).toEqual([expect.objectContaining({ message: `${IDENTITY_HEADER} header was issued for auth; expected one issued for inference`, extensions: { code: 'UNAUTHENTICATED' } })]);
    } finally {
      await connection.dispose();
    }
  });
});

describe('Redis', () => {
  it('refuses a client without credentials (NOAUTH)', async () => {
    const anonymous = redisClient(`redis://127.0.0.1:${new URL(stack.redisUrl).port}`, { maxRetriesPerRequest: 0, enableReadyCheck: false });
    expect((await rejection(anonymous.get('billing:balance:' + userId))).message).toMatch(/^NOAUTH/);
  });

  it("gives each service's user its own keys only, and no admin or dangerous command (NOPERM)", async () => {
    const as = (user: keyof NonNullable<TestStack['redisUserUrls']>) => redisClient(stack.redisUserUrls![user], { maxRetriesPerRequest: 0 });
    const knowledge = as('knowledge');
    const inference = as('inference');
    const gateway = as('gateway');
    const noperm = async (attempt: Promise<unknown>) => expect((await rejection(attempt)).message).toMatch(/^NOPERM/);
    await noperm(knowledge.get(`billing:balance:${userId}`));
    await noperm(knowledge.set(`billing:balance:${userId}`, '999999999'));
    await noperm(knowledge.hgetall('auth:{session-keys}'));
    await noperm(gateway.hgetall('auth:{session-keys}'));
    await noperm(gateway.set('auth:{session-keys}:current', 'mine'));
    await noperm(knowledge.xadd('billing:usage-events', '*', 'forged', '1'));
    // Inference appends usage events; it cannot read (nor trim) what others appended.
    await noperm(inference.xrange('billing:usage-events', '-', '+'));
    await noperm(inference.get(`billing:balance:${userId}`));
    for (const client of [knowledge, inference, gateway]) {
      await noperm(client.keys('*'));
      await noperm(client.config('GET', '*'));
      await noperm(client.flushall());
      await noperm(client.call('CLIENT', 'LIST'));
      await noperm(client.call('SWAPDB', '0', '1'));
      await noperm(client.call('ACL', 'LIST'));
    }
    // Their own prefixes work.
    expect(await knowledge.set('kb:perimeter-probe', '1')).toBe('OK');
    expect(await knowledge.del('kb:perimeter-probe')).toBe(1);
    expect(await gateway.set('gw:perimeter-probe', '1', 'PX', 1_000)).toBe('OK');
  });

  it('holds no session-signing private key in clear', async () => {
    const stored = await admin.hgetall('auth:{session-keys}');
    expect(Object.keys(stored).length).toBeGreaterThan(0);
    for (const value of Object.values(stored)) {
      expect(value).not.toContain('PRIVATE KEY');
      expect(Object.keys(JSON.parse(value))).toEqual(expect.arrayContaining(['publicKey']));
      expect(JSON.parse(value)).not.toHaveProperty('privateKey');
    }
    expect(await admin.exists('auth:session-key')).toBe(0);
  });
});

describe('/metrics of every service', () => {
  it('answers 401 without the token and 200 with it', async () => {
    const scrapes: Array<[string, string]> = [
      [`http://127.0.0.1:${stack.ports.gateway}/metrics`, stack.env.GATEWAY_METRICS_TOKEN],
      [`http://127.0.0.1:${stack.ports.inference}/metrics`, stack.env.INFERENCE_METRICS_TOKEN],
      [`http://127.0.0.1:${stack.ports.gpuMetrics}/metrics`, stack.env.GPU_SERVER_METRICS_TOKEN],
    ];
    for (const [url, metricsToken] of scrapes) {
      const refused = await fetch(url);
      expect({ url, status: refused.status }).toEqual({ url, status: 401 });
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
      expect((await fetch(url, { headers: { authorization: 'Bearer guess' } })).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: `Bearer ${metricsToken}` } })).status).toBe(200);
    }
  });
});

describe('after every attack', () => {
  it('nothing changed: the model is loaded, the balance and the session keys are as they were', async () => {
    expect(await operatorTriton().modelReady(MODEL)).toEqual({ ready: true });
    expect(await balance()).toBe(balanceBefore);
    expect(await admin.hgetall('auth:{session-keys}')).toEqual(sessionKeysBefore);
  });

  it('the legitimate path still works: through the gateway, knowledge ingests with inference, which reserves at billing, with the identities the gateway signed', async () => {
    const added = await gql(stack.gatewayUrl, 'mutation { addDocument(title: "Perimeter", content: "The perimeter holds when every service checks its audience.") { id } }', {}, bearer(token));
    expect(added.errors).toBeUndefined();
    const document = 'query($d: ID!) { document(id: $d) { status } }';
    const deadline = Date.now() + 60_000;
    let status = 'INGESTING';
    while (status === 'INGESTING' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = (await gql(stack.gatewayUrl, document, { d: added.data!.addDocument.id }, bearer(token))).data!.document.status;
    }
    expect(status).toBe('READY');
    const search = await gql(stack.gatewayUrl, '{ search(query: "audience", k: 1) { document { title } } }', {}, bearer(token));
    expect(search.errors).toBeUndefined();
    expect(search.data!.search).toEqual([{ document: { title: 'Perimeter' } }]);
    expect(await balance()).toBeLessThan(balanceBefore);
  }, 90_000);

  it('the legitimate path still works: through the gateway, the inference service reaches the gpu-server with its key', async () => {
    const res = await gql(stack.gatewayUrl, EMBED, {}, bearer(token));
    expect(res.errors).toBeUndefined();
    expect(res.data!.embed).toEqual([{ index: 0, dimensions: 128 }]);
    expect((await operatorTriton().repositoryIndex()).models).toContainEqual(expect.objectContaining({ name: MODEL, state: 'READY' }));
  });
});
