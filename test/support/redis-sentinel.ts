import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { redisAclFile, redisUrlAs, REDIS_SERVICE_USERS, type RedisServiceUser } from '../../lib/redis-acl';
import { freePort } from '../../scripts/free-port';
import { spawnRedisServer, waitForPing } from '../../scripts/redis-server';
import { type ClusterNode, stopNode } from './redis-cluster';

/** A redis-server, data node or sentinel: its port, process and arguments (to start it again). */
export type SentinelNode = ClusterNode;

/**
 * A real Redis behind Sentinel on free loopback ports: a master, one replica
 * (`--replicaof`) and three sentinels (`redis-server <conf> --sentinel`,
 * quorum 2), for the tests that prove the services' Sentinel mode and what a
 * failover costs them. The data nodes load `npm start`'s kind of ACL file
 * (lib/redis-acl.ts: a user per service, the default user with a password),
 * which the replica and the sentinels use as the default user.
 */
export interface RedisSentinel {
  /** The name the sentinels monitor, for `REDIS_SENTINEL_NAME`. */
  name: string;
  /** `host:port,…` of the sentinels, for `REDIS_SENTINELS`. */
  sentinelList: string;
  /** A URL of the first master as the default user, for `REDIS_URL` beside `REDIS_SENTINELS` (only its credentials are used). */
  url: string;
  /** Each service's ACL user's password. */
  passwords: Readonly<Record<RedisServiceUser, string>>;
  /** The data node the sentinels name as master now. */
  master(): Promise<SentinelNode>;
  /**
   * A planned failover (`SENTINEL FAILOVER`): waits until the sentinels name
   * the replica as master and the old master replicates from it.
   */
  failover(): Promise<void>;
  /**
   * Loses the master: kills it (SIGKILL), waits until the sentinels promoted
   * the replica, starts it again on its port and waits until it has rejoined
   * as the new master's replica (so changes can be confirmed by a replica again).
   */
  loseMaster(): Promise<void>;
  stop(): Promise<void>;
}

const NAME = 'mymaster';
/** Long enough not to take a loaded machine's slow answer for a lost master, short enough for a test. */
const DOWN_AFTER_MS = 2_000;
const WAIT_MS = 60_000;

export async function startRedisSentinel(): Promise<RedisSentinel> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-redis-sentinel-'));
  const passwords = Object.fromEntries(['default', ...REDIS_SERVICE_USERS].map((user) => [user, randomBytes(16).toString('hex')])) as Record<RedisServiceUser | 'default', string>;
  const aclFile = path.join(dir, 'users.acl');
  writeFileSync(aclFile, redisAclFile(passwords), { mode: 0o600 });
  const dataUrl = (port: number) => redisUrlAs(`redis://127.0.0.1:${port}`, 'default', passwords.default);
  const data: SentinelNode[] = [];
  const sentinels: SentinelNode[] = [];
  const stop = async () => {
    await Promise.all([...data, ...sentinels].map((node) => stopNode(node)));
    rmSync(dir, { recursive: true, force: true });
  };
  const start = (port: number, args: string[]): SentinelNode => ({ port, args, process: spawnRedisServer(args) });
  try {
    const masterPort = await freePort();
    const replicaPort = await freePort();
    for (const [port, extra] of [
      [masterPort, []],
      [replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]],
    ] as const) {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfilename', `appendonly-${port}.aof`, '--appenddirname', `aof-${port}`];
      // Each data node may become the other's replica, so both know how to authenticate to a master.
      const acl = ['--aclfile', aclFile, '--masteruser', 'default', '--masterauth', passwords.default];
      data.push(start(port, [...args, ...acl, '--save', '', '--daemonize', 'no', '--loglevel', 'warning', ...extra]));
    }
    await Promise.all(data.map((node) => waitForPing(dataUrl(node.port))));
    await waitForReplica(data[1].port, passwords.default);
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      // Sentinel rewrites its configuration file as it learns the other sentinels and the replicas, so each has its own.
      const conf = path.join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${NAME} 127.0.0.1 ${masterPort} 2`,
          `sentinel auth-pass ${NAME} ${passwords.default}`,
          `sentinel down-after-milliseconds ${NAME} ${DOWN_AFTER_MS}`,
          `sentinel failover-timeout ${NAME} 20000`,
          `sentinel parallel-syncs ${NAME} 1`,
          '',
        ].join('\n'),
      );
      sentinels.push(start(port, [conf, '--sentinel', '--loglevel', 'warning']));
    }
    await Promise.all(sentinels.map((node) => waitForPing(`redis://127.0.0.1:${node.port}`)));
    await waitForSentinels(sentinels);
    const master = async () => {
      const port = await masterPortNamed(sentinels);
      const node = data.find((n) => n.port === port);
      if (!node) throw new Error(`the sentinels name port ${port} as master, expected one of ${data.map((n) => n.port).join(', ')}`);
      return node;
    };
    /** Waits until the sentinels name another master than `old` and `old` replicates from it. */
    const replacing = async (old: SentinelNode, restart: boolean) => {
      await until(async () => (await master()) !== old, `the sentinels did not promote the replica of ${old.port}`);
      if (restart) {
        old.process = spawnRedisServer(old.args);
        await waitForPing(dataUrl(old.port));
      }
      // A restarted master comes back as a master of its own until a sentinel tells it to replicate.
      await waitForReplica(old.port, passwords.default);
      await waitForSentinels(sentinels);
    };
    return {
      name: NAME,
      sentinelList: sentinels.map((node) => `127.0.0.1:${node.port}`).join(','),
      url: dataUrl(masterPort),
      passwords,
      master,
      failover: async () => {
        const old = await master();
        await withClient(sentinels[0].port, (client) => client.call('SENTINEL', 'FAILOVER', NAME));
        await replacing(old, false);
      },
      loseMaster: async () => {
        const old = await master();
        await stopNode(old);
        await replacing(old, true);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function withClient<T>(port: number, use: (client: Redis) => Promise<T>, password?: string): Promise<T> {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(password ? { password } : {}) });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

/** Polls `check` (a failure counts as "not yet") until it holds; throws `what` with the last failure after WAIT_MS. */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = `: ${(error as Error).message}`;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${WAIT_MS} ms${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The master's port as a majority of the live sentinels name it. */
async function masterPortNamed(sentinels: SentinelNode[]): Promise<number> {
  const votes = new Map<number, number>();
  for (const sentinel of sentinels) {
    const reply = await withClient(sentinel.port, (client) => client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME)).catch(() => null);
    const port = Number((reply as [string, string] | null)?.[1]);
    if (port) votes.set(port, (votes.get(port) ?? 0) + 1);
  }
  const [port] = [...votes].find(([, count]) => count >= 2) ?? [];
  if (!port) throw new Error(`no master named by a majority of the sentinels: ${JSON.stringify([...votes])}`);
  return port;
}

/** The node at `port` is a replica whose link to its master is up and synced. */
function waitForReplica(port: number, password: string): Promise<void> {
  return until(
    () =>
      withClient(
        port,
        async (client) => {
          const info = await client.info('replication');
          return /role:slave/.test(info) && /master_link_status:up/.test(info);
        },
        password,
      ),
    `redis ${port} did not become a synced replica`,
  );
}

/** Every sentinel knows the other two and the one replica of the current master, so a failover can reach its quorum. */
function waitForSentinels(sentinels: SentinelNode[]): Promise<void> {
  return until(async () => {
    for (const sentinel of sentinels) {
      const fields = (await withClient(sentinel.port, (client) => client.call('SENTINEL', 'MASTER', NAME))) as string[];
      const field = (name: string) => fields[fields.indexOf(name) + 1];
      if (field('num-other-sentinels') !== '2' || field('num-slaves') !== '1' || field('flags') !== 'master') return false;
    }
    return true;
  }, 'the sentinels did not all see each other, the master and its replica');
}
