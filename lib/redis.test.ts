import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { startRedisServer, type RedisServer } from '../scripts/redis-server';
import { ErrorCode } from './errors';
import { createLogger } from './log';
import { connectRedis, RedisUnavailableError, redisUnavailable, redisUnavailableResponse, retryDuringFailover } from './redis';

const log = createLogger({ test: 'redis' });
let dir: string;
let servers: RedisServer[];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-redis-errors-'));
  servers = [await startRedisServer(path.join(dir, 'a')), await startRedisServer(path.join(dir, 'b'))];
});

afterAll(async () => {
  await Promise.all(servers.map((server) => server.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** What `promise` was rejected with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error: unknown) => error,
  );
}

it("a replica's READONLY refusal is Redis unavailable, an ERR reply or any other error is not", async () => {
  const [primary, replica] = servers.map((server) => new Redis(server.url));
  try {
    await replica.call('REPLICAOF', '127.0.0.1', String(new URL(servers[0].url).port));
    const readOnly = await rejection(replica.set('k', 'v'));
    expect(redisUnavailable(readOnly)).toBeInstanceOf(RedisUnavailableError);
    expect(redisUnavailable(readOnly)?.message).toBe('Redis is unavailable: the server is a replica (a failover is under way); try again shortly');
    expect(redisUnavailable(await rejection(primary.call('GET')))).toBeUndefined();
    expect(redisUnavailable(new Error('Connection refused by the inference service'))).toBeUndefined();
    expect(redisUnavailable('Connection is closed.')).toBeUndefined();
  } finally {
    await replica.call('REPLICAOF', 'NO', 'ONE');
    // QUIT rather than disconnect(): ioredis's disconnect leaves a timer that holds jest open.
    await Promise.all([primary.quit(), replica.quit()]);
  }
});

it('a server that went away: a command fails soon (no wait for a failover on one server) as Redis unavailable, without its address', async () => {
  const server = await startRedisServer(path.join(dir, 'gone'));
  const client = connectRedis(server.url, log);
  try {
    expect(await client.ping()).toBe('PONG');
    await server.stop();
    const started = Date.now();
    let attempts = 0;
    const error = await rejection(
      retryDuringFailover(client, () => {
        attempts++;
        return client.get('k');
      }),
    );
    // Generous for a loaded machine: the point is no hang, not the figure (about 0.6 s of reconnections).
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(attempts).toBe(1);
    expect(error).toBeInstanceOf(RedisUnavailableError);
    const response = redisUnavailableResponse({ message: 'Reached the max retries per request limit' }, error);
    expect(response).toEqual({ message: (error as Error).message, extensions: { code: ErrorCode.ServiceUnavailable, service: 'redis', retryable: true } });
    expect(response?.message).not.toContain(new URL(server.url).port);
  } finally {
    client.disconnect();
  }
});

it('a command whose connection was lost after it was sent may have run: SERVICE_UNAVAILABLE, but not retryable, and the message says so', () => {
  const lost = Object.assign(new Error('Connection is closed.'), { name: 'Error' });
  const response = redisUnavailableResponse({ message: lost.message }, lost);
  expect(response?.extensions).toEqual({ code: ErrorCode.ServiceUnavailable, service: 'redis', retryable: false });
  expect(response?.message).toBe('Redis is unavailable: the connection was lost; the change may or may not have been made, check before making it again');
});

it('another error keeps its formatted answer', () => {
  expect(redisUnavailableResponse({ message: 'boom' }, new TypeError('boom'))).toBeUndefined();
});
