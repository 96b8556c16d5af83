import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';
import { freePort } from '../../scripts/free-port';
import { spawnRedisServer, waitForPing } from '../../scripts/redis-server';

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  process: ChildProcess;
  args: string[];
}

/**
 * A real Redis Cluster of three masters and three replicas on free loopback
 * ports, for the tests that prove the services' keys, scripts and failover on
 * it. It runs with the default user only (no ACL users): the ACL users are
 * proven on one server by the stack's own tests.
 */
export interface RedisCluster {
  nodes: ClusterNode[];
  /** `host:port,…` of every node, for `REDIS_CLUSTER_NODES`. */
  nodeList: string;
  /** A URL of one node, for `REDIS_URL` beside `REDIS_CLUSTER_NODES`. */
  url: string;
  /** The node that is master of `key`'s slot now. */
  masterOf(key: string): Promise<ClusterNode>;
  /**
   * Loses a master: kills it at once (SIGKILL: no chance to hand anything
   * over), waits until its replica took over every slot, then starts it again
   * on its port and config file, and waits until it has rejoined as the new
   * master's replica (so changes can be confirmed by a replica again).
   */
  loseMaster(node: ClusterNode): Promise<void>;
  /**
   * A planned failover (`CLUSTER FAILOVER` on `node`'s replica, as a rolling
   * upgrade does): the replica takes over while `node` stays up and answers
   * MOVED for the slots it gave away; resolves once every node reports them served.
   */
  handOver(node: ClusterNode): Promise<void>;
  stop(): Promise<void>;
}

const NODE_TIMEOUT_MS = 2_000;

export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-redis-cluster-'));
  const nodes: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((node) => stopNode(node)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      // The bus port is explicit: port + 10000 (Redis' default) could fall in the OS's ephemeral range.
      const busPort = await freePort();
      const args = [
        '--port',
        String(port),
        '--cluster-port',
        String(busPort),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-node-timeout',
        String(NODE_TIMEOUT_MS),
        '--cluster-config-file',
        path.join(dir, `nodes-${port}.conf`),
        '--dir',
        dir,
        '--dbfilename',
        `dump-${port}.rdb`,
        '--appendonly',
        'yes',
        '--appendfilename',
        `appendonly-${port}.aof`,
        '--appenddirname',
        `aof-${port}`,
        '--save',
        '',
        '--daemonize',
        'no',
        '--loglevel',
        'warning',
      ];
      nodes.push({ port, args, process: spawnRedisServer(args) });
    }
    await Promise.all(nodes.map((node) => waitForPing(`redis://127.0.0.1:${node.port}`)));
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '1', '--cluster-yes']);
    const cluster: RedisCluster = {
      nodes,
      nodeList: nodes.map((node) => `127.0.0.1:${node.port}`).join(','),
      url: `redis://127.0.0.1:${nodes[0].port}`,
      masterOf: async (key) => {
        const alive = nodes.find((node) => node.process.exitCode === null && node.process.signalCode === null)!;
        const client = new Redis(alive.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
        try {
          const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
          const ranges = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
          const range = ranges.find(([from, to]) => slot >= from && slot <= to);
          const node = nodes.find((n) => n.port === range?.[2][1]);
          if (!node) throw new Error(`no node serves slot ${slot} of ${key}`);
          return node;
        } finally {
          client.disconnect();
        }
      },
      loseMaster: async (node) => {
        await stopNode(node);
        // Until the others mark it failed (after the node timeout) they still report the cluster ok.
        await waitForFailed(nodes, node, 30_000);
        await waitForClusterOk(nodes, 30_000);
        node.process = spawnRedisServer(node.args);
        await waitForPing(`redis://127.0.0.1:${node.port}`);
        await waitForReplicas([node], 30_000);
      },
      handOver: async (node) => {
        const replica = new Redis(await replicaPortOf(node), '127.0.0.1', { maxRetriesPerRequest: 1 });
        try {
          await replica.call('CLUSTER', 'FAILOVER');
          const deadline = Date.now() + 30_000;
          while (!/role:master/.test(await replica.info('replication'))) {
            if (Date.now() > deadline) throw new Error(`the replica of ${node.port} did not take over within 30000 ms`);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        } finally {
          replica.disconnect();
        }
        await waitForClusterOk(nodes, 30_000);
      },
      stop,
    };
    await waitForClusterOk(nodes, 30_000);
    await waitForReplicas(nodes, 30_000);
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Kills a node at once (SIGKILL) and resolves when it has exited. */
export function stopNode(node: ClusterNode): Promise<void> {
  return new Promise((resolve) => {
    if (node.process.exitCode !== null || node.process.signalCode !== null) return resolve();
    node.process.once('exit', () => resolve());
    node.process.kill('SIGKILL');
  });
}

/** Every live node reports cluster_state:ok and every slot assigned and served by a live master. */
async function waitForClusterOk(nodes: ClusterNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const alive = nodes.filter((node) => node.process.exitCode === null && node.process.signalCode === null);
    const states = await Promise.all(
      alive.map(async (node) => {
        const client = new Redis(node.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        client.on('error', () => undefined);
        try {
          await client.connect();
          const info = String(await client.call('CLUSTER', 'INFO'));
          return /cluster_state:ok/.test(info) && /cluster_slots_ok:16384/.test(info) ? 'ok' : info.split('\n')[0];
        } catch (error) {
          return (error as Error).message;
        } finally {
          client.disconnect();
        }
      }),
    );
    if (states.every((state) => state === 'ok')) return;
    last = states.join('; ');
    if (Date.now() > deadline) throw new Error(`Redis Cluster not healthy within ${timeoutMs} ms: expected cluster_state:ok on every live node, got ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The port of the replica of `master` (CLUSTER NODES lines: id address flags master-id …). */
async function replicaPortOf(master: ClusterNode): Promise<number> {
  const client = new Redis(master.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  try {
    const lines = String(await client.call('CLUSTER', 'NODES'))
      .trim()
      .split('\n');
    const id = lines.find((line) => line.split(' ')[2].includes('myself'))!.split(' ')[0];
    const replica = lines.find((line) => line.split(' ')[3] === id);
    if (!replica) throw new Error(`cluster node ${master.port} has no replica`);
    return Number(/:(\d+)@/.exec(replica.split(' ')[1])![1]);
  } finally {
    client.disconnect();
  }
}

/** A live node's view of the cluster marks `lost` as failed (not just suspected: `fail?`), which starts its replica's election. */
async function waitForFailed(nodes: ClusterNode[], lost: ClusterNode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const observer = nodes.find((node) => node !== lost && node.process.exitCode === null && node.process.signalCode === null)!;
  const client = new Redis(observer.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  try {
    for (;;) {
      const line = String(await client.call('CLUSTER', 'NODES'))
        .split('\n')
        .find((entry) => entry.includes(`:${lost.port}@`));
      if (line?.split(' ')[2].split(',').includes('fail')) return;
      if (Date.now() > deadline) throw new Error(`cluster node ${lost.port} was not marked failed within ${timeoutMs} ms: ${line}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    client.disconnect();
  }
}

/** Every replica among `nodes` has finished its sync with its master (so WAIT 1 can succeed). */
async function waitForReplicas(nodes: ClusterNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const node of nodes) {
    const client = new Redis(node.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      for (;;) {
        const info = await client.info('replication');
        if (/role:master/.test(info) || /master_link_status:up/.test(info)) break;
        if (Date.now() > deadline) throw new Error(`cluster node ${node.port} did not finish syncing with its master within ${timeoutMs} ms: ${info}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      client.disconnect();
    }
  }
}
