import Redis, { Cluster } from 'ioredis';
import { envSecret, envString } from './config';
import type { Logger } from './log';

/**
 * `REDIS_URL=memory://` selects an in-process store with Redis semantics
 * (ioredis-mock, including Lua). Every connection made in one process shares
 * its data, which is why `npm start` runs all services in one process when it
 * has to fall back to it; nothing is kept when that process ends.
 */
export const IN_MEMORY_REDIS_URL = 'memory://';

/**
 * A connection to `url`, as the service's own ACL user when `REDIS_USERNAME`
 * and `REDIS_PASSWORD` (or `REDIS_PASSWORD_FILE`) are set (they win over
 * credentials in the URL; see lib/redis-acl.ts).
 *
 * `REDIS_CLUSTER_NODES=host:port,…` (some of a Redis Cluster's nodes; the
 * rest are discovered) selects ioredis' Cluster client instead, with the
 * same credentials (from the variables, else `url`'s) on every node. It is
 * typed as `Redis` because it answers the same commands: every multi-key
 * script and transaction of the services keeps its keys in one hash slot
 * (each README's key table), `duplicate()` gives a blocking reader or a
 * subscriber its own Cluster connection, and auto-pipelining batches per node.
 */
export function connectRedis(url: string, log: Logger): Redis {
  if (url === IN_MEMORY_REDIS_URL) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const RedisMock = require('ioredis-mock') as typeof Redis;
    return new RedisMock();
  }
  const username = envString('REDIS_USERNAME');
  const password = envSecret('REDIS_PASSWORD')?.trim();
  const options = {
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    // Commands issued while Redis is away wait for the reconnection instead of
    // failing at once, but not forever: a GraphQL request gets an error, not a hang.
    maxRetriesPerRequest: 3,
  };
  const clusterNodes = envString('REDIS_CLUSTER_NODES');
  const client = clusterNodes ? connectCluster(clusterNodes, url, options) : new Redis(url, { ...options, lazyConnect: false, enableOfflineQueue: true, enableAutoPipelining: true });
  let lastError = '';
  client.on('error', (error: Error) => {
    if (error.message !== lastError) log.warn('redis error', { error: error.message });
    lastError = error.message;
  });
  client.on('ready', () => {
    if (lastError) log.info('redis reconnected');
    lastError = '';
  });
  return client;
}

/**
 * A Cluster client for `nodes` (`host:port,…`). Commands wait in the offline
 * queue while a failover promotes a replica (a node-timeout of a few seconds)
 * and follow MOVED/ASK redirections, so a request sees a slower answer, not
 * an error, when a master is lost.
 */
function connectCluster(nodes: string, url: string, options: { username?: string; password?: string; maxRetriesPerRequest: number }): Redis {
  const parsed = new URL(url);
  const startup = nodes.split(',').map((node) => {
    const [host, port] = node.trim().split(':');
    if (!host || !/^\d+$/.test(port ?? '')) throw new Error(`REDIS_CLUSTER_NODES expects host:port,… but got ${JSON.stringify(nodes)}`);
    return { host, port: Number(port) };
  });
  const cluster = new Cluster(startup, {
    redisOptions: {
      ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
      ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
      ...options,
    },
    enableOfflineQueue: true,
    // Same reason as for one server: one write per node for the commands of one tick.
    enableAutoPipelining: true,
    // A failover takes the cluster's node timeout plus an election: keep
    // re-fetching the slots and retrying a redirected or refused command meanwhile.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    maxRedirections: 32,
  });
  return cluster as unknown as Redis;
}

/** True for a client made by connectRedis from `REDIS_CLUSTER_NODES`. */
export function isCluster(client: Redis): boolean {
  return (client as unknown as { isCluster?: boolean }).isCluster === true;
}

/**
 * Runs `command` (a script or command whose keys are all in one slot) and,
 * on a Cluster, answers only once a replica of that slot's master has it
 * (WAIT 1, sent in the same pipeline so it goes to that master's connection).
 * Redis replicates asynchronously: without this, a change acknowledged just
 * before its master dies is gone after the failover. When no replica
 * confirms within `timeoutMs` (none is attached, as after a failover until
 * the lost node rejoins), it throws, so an idempotent caller retries rather
 * than report a change that may not survive. On one server it runs the
 * command alone.
 */
export async function runReplicated(client: Redis, command: string, args: (string | number)[], timeoutMs = 1_000): Promise<unknown> {
  if (!isCluster(client)) return (client as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[command](...args);
  for (let attempt = 1; ; attempt++) {
    const pipeline = client.pipeline() as unknown as Record<string, (...a: (string | number)[]) => unknown> & {
      call(...a: (string | number)[]): unknown;
      exec(): Promise<[Error | null, unknown][] | null>;
    };
    pipeline[command](...args);
    pipeline.call('WAIT', 1, timeoutMs);
    const [[error, reply], [waitError, replicas]] = (await pipeline.exec()) ?? [
      [new Error('no reply'), null],
      [null, 0],
    ];
    // ioredis follows a redirection for a pipeline only when every command of it was redirected, and
    // WAIT is answered wherever it lands: a redirected command did not run, so it is sent again on a fresh slot map.
    if (error && REDIRECTED.test(error.message) && attempt < MAX_REDIRECTIONS) {
      await new Promise<void>((resolve) => (client as unknown as Cluster).refreshSlotsCache(() => resolve()));
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (error) throw error;
    if (waitError) throw waitError;
    if (Number(replicas) < 1)
      throw new Error(`${command} ran, but no replica confirmed it within ${timeoutMs} ms (expected at least 1): it may not survive a failover, so it is reported as failed for the caller to retry`);
    return reply;
  }
}

/** Replies of a Cluster node that did not run the command (another node serves the slot, or none does yet). */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;
const MAX_REDIRECTIONS = 30;

/** True once the connection answers PING; used by readiness checks. */
export async function redisIsReady(client: Redis, timeoutMs = 1_000): Promise<boolean> {
  // A PING waits in the offline queue while Redis is away: a readiness probe must answer "no" in time, not hang.
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  try {
    return await Promise.race([client.ping().then((reply) => reply === 'PONG'), timedOut]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
