import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { redisUrlAs } from '../lib/redis-acl';
import { killWithParent } from './child-lifetime';
import { freePort } from './free-port';

export interface RedisServer {
  /** The operator's URL: the default user, with its password when the server has an ACL. */
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** True when a `redis-server` binary is on the PATH. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Starts a private `redis-server` on a free loopback port (or `port`, to
 * restart one on its address) with append-only persistence under `dir`, and
 * waits until it answers PING. It is ours alone: nothing else on the machine
 * is touched. With `acl`, the server loads that ACL file (written to
 * `<dir>/users.acl`; see lib/redis-acl.ts) and `url` carries the default
 * user's password; a restart on the same port with the same `acl` keeps the users.
 */
/** A `redis-server` with `args`, its output ignored, killed when this process exits (for the cluster and sentinel harnesses, which wait for it themselves). */
export function spawnRedisServer(args: string[]): ChildProcess {
  return killWithParent(spawn('redis-server', args, { stdio: 'ignore' }));
}

export async function startRedisServer(dir: string, onLine?: (line: string) => void, port?: number, acl?: { file: string; defaultPassword: string }): Promise<RedisServer> {
  mkdirSync(dir, { recursive: true });
  port ??= await freePort();
  const aclFile = path.join(dir, 'users.acl');
  if (acl) writeFileSync(aclFile, acl.file, { mode: 0o600 });
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', '', '--daemonize', 'no', '--loglevel', 'warning', ...(acl ? ['--aclfile', aclFile] : [])],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8').on('data', (chunk: string) =>
      chunk
        .split('\n')
        .filter(Boolean)
        .forEach((line) => onLine?.(line)),
    );
  }
  const url = acl ? redisUrlAs(`redis://127.0.0.1:${port}`, 'default', acl.defaultPassword) : `redis://127.0.0.1:${port}`;
  killWithParent(child);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`redis-server exited with code ${code} before it was ready`))));
  exited.catch(() => undefined);
  try {
    await Promise.race([waitForPing(url), exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    url,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Resolves once the server at `url` answers PING; throws after `timeoutMs`. */
export async function waitForPing(url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`redis-server at ${url} did not answer within ${timeoutMs} ms: ${(error as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.disconnect();
    }
  }
}
