/**
 * Signed-in callers while Redis restarts (issue 21): auth cannot read a
 * session's status and answers the gateway 503 SERVICE_UNAVAILABLE; the
 * gateway then checks the credential against auth's last answer
 * (GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS, gateway/auth/README.md), so the
 * request is answered with what does not need Redis, the rest null with a
 * coded error, never refused whole. The stack's Redis is a redis-server of this
 * file's own (append-only), stopped and started again on its port.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type RedisServer, startRedisServer } from '../scripts/redis-server';
import { bearer, gql, uniqueEmail } from './support/graphql';
import { startTestStack, type TestStack } from './support/stack';

const CACHE_MS = 1_000;
const QUERY = '{ me { email } models { id } }';

let dir: string;
let redis: RedisServer;
let stack: TestStack;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-auth-outage-'));
  redis = await startRedisServer(dir);
  // startTestStack hands REDIS_URL to every service: this file's server, whichever the environment names.
  const environment = process.env.REDIS_URL;
  process.env.REDIS_URL = redis.url;
  try {
    stack = await startTestStack({
      GATEWAY_WORKERS: '1',
      GATEWAY_RESPONSE_CACHE: 'false',
      GATEWAY_CREDENTIALS_CACHE_MS: String(CACHE_MS),
      GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS: '600000',
    });
  } finally {
    if (environment === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = environment;
  }
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

it('answers a signed-in caller without the parts that need Redis while it is down, never 503, and whole once it is back', async () => {
  const email = uniqueEmail('redis-outage');
  const signUp = await gql(stack.gatewayUrl, 'mutation($e: String!) { signUp(email: $e, password: "correct horse battery", name: "R") { token } }', { e: email });
  const token = signUp.data!.signUp.token as string;
  expect((await gql(stack.gatewayUrl, QUERY, {}, bearer(token))).data!.me).toEqual({ email });

  const port = Number(new URL(redis.url).port);
  await redis.stop();
  await sleep(CACHE_MS + 100); // the gateway must ask auth again, and auth cannot read the session

  const degraded = await gql(stack.gatewayUrl, QUERY, {}, bearer(token));
  expect(degraded.status).toBe(200);
  expect(degraded.data!.models.length).toBeGreaterThan(0);
  expect(degraded.data!.me).toBeNull();
  expect(degraded.errors?.length).toBeGreaterThan(0);
  // Auth answers 503 once its Redis client gives up, or the gateway stops waiting first (stalePatienceMs): either is an outage.
  expect(stack.logs.some((line) => line.includes('credential checked against an earlier answer') && /STORE_UNAVAILABLE|TIMEOUT/.test(line))).toBe(true);

  redis = await startRedisServer(dir, undefined, port);
  let recovered = await gql(stack.gatewayUrl, QUERY, {}, bearer(token));
  for (let i = 0; i < 100 && recovered.errors; i++) {
    expect(recovered.status).toBe(200);
    await sleep(100);
    recovered = await gql(stack.gatewayUrl, QUERY, {}, bearer(token));
  }
  expect(recovered.errors).toBeUndefined();
  expect(recovered.data!.me).toEqual({ email });
}, 120_000);
