import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { startRedisServer } from '../../scripts/redis-server';

/**
 * A real Redis for a test file: a private `redis-server` on a free port (with
 * append-only persistence in a temporary directory), or `REDIS_URL` when the
 * environment sets one. Tests using `REDIS_URL` must only touch keys they
 * created (random ids), never FLUSHALL.
 */
export interface TestRedis {
  url: string;
  /** A new client; each is disconnected by `stop()`. */
  connect(): Redis;
  stop(): Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  const clients: Redis[] = [];
  const log = createLogger({ service: 'test' });
  const connect = (url: string) => () => {
    const client = connectRedis(url, log);
    clients.push(client);
    return client;
  };
  // QUIT rather than disconnect(): ioredis's disconnect leaves a timer that holds jest open after the tests.
  const disconnectAll = () => Promise.all(clients.splice(0).map((client) => client.quit().catch(() => client.disconnect())));
  if (process.env.REDIS_URL) {
    const url = process.env.REDIS_URL;
    return { url, connect: connect(url), stop: async () => void (await disconnectAll()) };
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-redis-'));
  const server = await startRedisServer(dir);
  return {
    url: server.url,
    connect: connect(server.url),
    stop: async () => {
      await disconnectAll();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
