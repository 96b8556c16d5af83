import type { GraphQLFormattedError } from 'graphql';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { envSecret, envString } from './config';
import { ErrorCode } from './errors';
import type { Logger } from './log';

/**
 * `REDIS_URL=memory://` selects an in-process store with Redis semantics
 * (ioredis-mock, including Lua). Every connection made in one process shares
 * its data, which is why `npm start` runs all services in one process when it
 * has to fall back to it; nothing is kept when that process ends.
 */
export const IN_MEMORY_REDIS_URL = 'memory://';

/**
 * How long a command waits for a failover (a Cluster replica promoted, or a
 * Sentinel electing a new master) before it fails with RedisUnavailableError.
 * It covers a failover with `cluster-node-timeout` / `down-after-milliseconds`
 * of up to about 5 s (detection, then an election of a second or two).
 */
export const REDIS_FAILOVER_WAIT_MS = 10_000;
/** The pause between a command's attempts while it waits for a failover. */
const FAILOVER_RETRY_DELAY_MS = 200;

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
 * (each README's key table), and `duplicate()` gives a blocking reader or a
 * subscriber its own Cluster connection.
 *
 * `REDIS_SENTINELS=host:port,…` with `REDIS_SENTINEL_NAME` (default
 * `mymaster`) selects Sentinel mode: the master is asked of the sentinels, and
 * asked again after a failover. The data connection uses the same credentials
 * as above; the sentinels' own, when they require one, are
 * `REDIS_SENTINEL_USERNAME` and `REDIS_SENTINEL_PASSWORD` (or `_FILE`).
 *
 * On one server a command fails within about a second when Redis is away (a
 * request gets a coded, retryable error rather than a hang); on a Cluster or
 * Sentinel it waits up to REDIS_FAILOVER_WAIT_MS for a replica to take over.
 */
export function connectRedis(url: string, log: Logger): Redis {
  if (url === IN_MEMORY_REDIS_URL) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const RedisMock = require('ioredis-mock') as typeof Redis;
    return new RedisMock();
  }
  const username = envString('REDIS_USERNAME');
  const password = envSecret('REDIS_PASSWORD')?.trim();
  const parsed = new URL(url);
  const credentials = {
    ...(username || parsed.username ? { username: username ?? decodeURIComponent(parsed.username) } : {}),
    ...(password || parsed.password ? { password: password ?? decodeURIComponent(parsed.password) } : {}),
  };
  const clusterNodes = envString('REDIS_CLUSTER_NODES');
  const sentinels = envString('REDIS_SENTINELS');
  if (clusterNodes && sentinels) throw new Error('REDIS_CLUSTER_NODES and REDIS_SENTINELS select different Redis deployments: expected one of them, got both');
  const client = clusterNodes ? connectCluster(clusterNodes, credentials) : sentinels ? connectSentinel(sentinels, credentials) : connectServer(url, credentials);
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

type Credentials = { username?: string; password?: string };

/** Options every connection to one server shares, whether its address is fixed or asked of the sentinels. */
const SERVER_OPTIONS: RedisOptions = {
  enableOfflineQueue: true,
  enableAutoPipelining: true,
  // A Redis that does not answer the connection at all (a lost host) counts as away within a second,
  // like one that refuses it, instead of after the 10 s default.
  connectTimeout: 1_000,
  // A master demoted to a replica (a Sentinel failover) refuses writes: reconnect, which finds the
  // new master, and send the refused command again there.
  reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
};

/**
 * One server at `url`. Commands issued while it is away wait for up to three
 * reconnections (0.1 + 0.2 + 0.3 s) and then fail: nothing takes its place, so
 * waiting longer would only make requests hang.
 */
function connectServer(url: string, credentials: Credentials): Redis {
  return new Redis(url, { ...SERVER_OPTIONS, ...credentials, maxRetriesPerRequest: 3, retryStrategy: (attempt) => Math.min(attempt * 100, 1_000) });
}

/**
 * The master that the sentinels at `list` name for `REDIS_SENTINEL_NAME`,
 * asked again at each reconnection: a lost master's connection closes, and a
 * demoted one's is closed by Redis (or refuses a write with READONLY), so the
 * client finds the promoted replica; a command waits across reconnections for
 * up to REDIS_FAILOVER_WAIT_MS. ioredis' `failoverDetector` is left off: when
 * its `+switch-master` arrives while a reconnection is under way, ioredis
 * ends the client for good ("Connection is closed." ever after).
 */
function connectSentinel(list: string, credentials: Credentials): Redis {
  const sentinelUsername = envString('REDIS_SENTINEL_USERNAME');
  const sentinelPassword = envSecret('REDIS_SENTINEL_PASSWORD')?.trim();
  return new Redis({
    ...SERVER_OPTIONS,
    ...credentials,
    sentinels: hostPorts('REDIS_SENTINELS', list),
    name: envString('REDIS_SENTINEL_NAME', 'mymaster'),
    ...(sentinelUsername ? { sentinelUsername } : {}),
    ...(sentinelPassword ? { sentinelPassword } : {}),
    retryStrategy: () => FAILOVER_RETRY_DELAY_MS,
    maxRetriesPerRequest: Math.ceil(REDIS_FAILOVER_WAIT_MS / FAILOVER_RETRY_DELAY_MS),
  });
}

/** `host:port,…` of `variable` as ioredis takes addresses. */
function hostPorts(variable: string, list: string): { host: string; port: number }[] {
  return list.split(',').map((node) => {
    const [host, port] = node.trim().split(':');
    if (!host || !/^\d+$/.test(port ?? '')) throw new Error(`${variable} expects host:port,… but got ${JSON.stringify(list)}`);
    return { host, port: Number(port) };
  });
}

/**
 * A Cluster client for `nodes` (`host:port,…`). Commands wait in the offline
 * queue while a failover promotes a replica (a node-timeout of a few seconds)
 * and follow MOVED/ASK redirections, so a request sees a slower answer, not
 * an error, when a master is lost. Each refused or lost attempt counts as a
 * redirection: their number, times the delay between them, is the wait.
 */
function connectCluster(nodes: string, credentials: Credentials): Redis {
  const cluster = new Cluster(hostPorts('REDIS_CLUSTER_NODES', nodes), {
    redisOptions: { ...credentials, connectTimeout: SERVER_OPTIONS.connectTimeout },
    enableOfflineQueue: true,
    // No auto-pipelining here, unlike one server: it batches the commands of many slots per node, and
    // when a failover moves those slots ioredis sends such a pipeline again only if every reply is the
    // same MOVED, so each command got its own slot's MOVED as its answer (63 of 16k reads in a planned
    // failover, none without it, and no fewer reads per second).
    // A failover takes the cluster's node timeout plus an election: keep
    // re-fetching the slots and retrying a redirected or refused command meanwhile.
    retryDelayOnFailover: FAILOVER_RETRY_DELAY_MS,
    retryDelayOnClusterDown: FAILOVER_RETRY_DELAY_MS,
    retryDelayOnTryAgain: FAILOVER_RETRY_DELAY_MS,
    maxRedirections: Math.ceil(REDIS_FAILOVER_WAIT_MS / FAILOVER_RETRY_DELAY_MS),
  });
  return cluster as unknown as Redis;
}

/** True for a client made by connectRedis from `REDIS_CLUSTER_NODES`. */
export function isCluster(client: Redis): boolean {
  return (client as unknown as { isCluster?: boolean }).isCluster === true;
}

/** True for a client whose Redis has replicas that a failover promotes: a Cluster, or a master found through Sentinel. */
function hasFailover(client: Redis): boolean {
  return isCluster(client) || Boolean((client as { options?: RedisOptions }).options?.sentinels);
}

/**
 * Runs `command` (a script or command whose keys are all in one slot) and,
 * on a Cluster or behind Sentinel, answers only once a replica of the master
 * that ran it has it (WAIT 1, sent in the same pipeline so it goes to that
 * master's connection). Redis replicates asynchronously: without this, a
 * change acknowledged just before its master dies is gone after the
 * failover. When no replica confirms within `timeoutMs` (none is attached, as
 * after a failover until the lost node rejoins), it throws
 * RedisUnavailableError, so an idempotent caller retries rather than report a
 * change that may not survive. On one server it runs the command alone.
 */
export async function runReplicated(client: Redis, command: string, args: (string | number)[], timeoutMs = 1_000): Promise<unknown> {
  if (!hasFailover(client)) return (client as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[command](...args);
  const deadline = Date.now() + REDIS_FAILOVER_WAIT_MS;
  for (;;) {
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
    if (error && REDIRECTED.test(error.message) && isCluster(client) && Date.now() < deadline) {
      await new Promise<void>((resolve) => (client as unknown as Cluster).refreshSlotsCache(() => resolve()));
      await new Promise((resolve) => setTimeout(resolve, FAILOVER_RETRY_DELAY_MS));
      continue;
    }
    if (error) throw error;
    if (waitError) throw waitError;
    if (Number(replicas) < 1) throw new RedisUnavailableError(`no replica confirmed a change within ${timeoutMs} ms (expected at least 1), so it may not survive a failover`);
    return reply;
  }
}

/** Replies of a Cluster node that did not run the command (another node serves the slot, or none does yet). */
const REDIRECTED = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;

/**
 * Redis could not serve a command for now: it is away, restarting, or in a
 * failover. The message says which without Redis' addresses; the request
 * that met it may be sent again.
 */
export class RedisUnavailableError extends Error {
  /**
   * @param mayHaveRun the command was sent and its connection lost before the reply: it may have run, so a change
   *   without an idempotency key must not simply be sent again.
   */
  constructor(
    reason: string,
    readonly mayHaveRun = false,
  ) {
    super(`Redis is unavailable: ${reason}; ${mayHaveRun ? 'the change may or may not have been made, check before making it again' : 'try again shortly'}`);
    this.name = 'RedisUnavailableError';
  }
}

/**
 * Replies and client errors that mean "not now" rather than "wrong", each
 * with what it says in words. Redis' own replies (ReplyError) are matched by
 * their first word; ioredis' errors by their name or fixed message.
 */
const UNAVAILABLE_REPLIES: Record<string, string> = {
  CLUSTERDOWN: 'the cluster is down or failing over',
  TRYAGAIN: 'the cluster is moving keys or failing over',
  MOVED: 'the cluster is failing over',
  ASK: 'the cluster is moving keys',
  READONLY: 'the server is a replica (a failover is under way)',
  LOADING: 'the server is loading its data after a restart',
  MASTERDOWN: 'the replica lost its master',
  NOREPLICAS: 'not enough replicas are connected',
};
/** [message, what it says in words, whether the command may have run before the failure]. */
const UNAVAILABLE_CLIENT_ERRORS: [RegExp, string, boolean][] = [
  [/^Connection is closed\.$/, 'the connection was lost', true],
  // A pipeline cut in the middle: its first commands may have run, the rest did not.
  [/^Command aborted due to connection close$/, 'the connection was lost', true],
  [/^Too many Cluster redirections/, `no master took over within ${REDIS_FAILOVER_WAIT_MS} ms`, false],
  [/^Failed to refresh slots cache/, 'no cluster node answered', false],
  [/^All sentinels are unreachable/, 'no sentinel answered', false],
  [/^Stream isn't writeable/, 'the connection is not open', false],
];

/** `error` as a RedisUnavailableError when it is one of Redis' "not now" failures; undefined for any other error. */
export function redisUnavailable(error: unknown): RedisUnavailableError | undefined {
  if (error instanceof RedisUnavailableError) return error;
  if (!(error instanceof Error)) return undefined;
  if (error.name === 'MaxRetriesPerRequestError') return new RedisUnavailableError('it did not come back while the command waited');
  if (error.name === 'ClusterAllFailedError') return new RedisUnavailableError('no cluster node answered');
  if (error.name === 'ReplyError') {
    const reason = UNAVAILABLE_REPLIES[error.message.split(' ', 1)[0]];
    return reason ? new RedisUnavailableError(reason) : undefined;
  }
  const known = UNAVAILABLE_CLIENT_ERRORS.find(([pattern]) => pattern.test(error.message));
  return known ? new RedisUnavailableError(known[1], known[2]) : undefined;
}

/**
 * A subgraph's answer for a resolver that met `error`, when it is Redis being
 * unavailable: SERVICE_UNAVAILABLE, `service: 'redis'`, `retryable` unless the
 * command may have run (its connection was lost after sending it),
 * in place of Apollo's INTERNAL_SERVER_ERROR (which would say nothing a
 * client can act on). Undefined for any other error.
 */
export function redisUnavailableResponse(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError | undefined {
  const unavailable = redisUnavailable(error);
  if (!unavailable) return undefined;
  return { ...formatted, message: unavailable.message, extensions: { code: ErrorCode.ServiceUnavailable, service: 'redis', retryable: !unavailable.mayHaveRun } };
}

/**
 * Runs `step` (idempotent: running it twice changes nothing more than once)
 * and, on a Cluster or behind Sentinel, runs it again while it fails with
 * Redis unavailable, for up to REDIS_FAILOVER_WAIT_MS: a failover that ends
 * in that time (a replica promoted, then the lost master back as its
 * replica, so a change can be confirmed again) costs the caller time, not an
 * error. On one server nothing takes over, so it fails at once.
 */
export async function retryDuringFailover<T>(client: Redis, step: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + REDIS_FAILOVER_WAIT_MS;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      const unavailable = redisUnavailable(error);
      if (!unavailable) throw error;
      if (!hasFailover(client) || Date.now() >= deadline) throw unavailable;
      await new Promise((resolve) => setTimeout(resolve, FAILOVER_RETRY_DELAY_MS));
    }
  }
}

/**
 * Runs a Lua script on one key as a change that must survive a failover:
 * confirmed by a replica (runReplicated) and sent again through a failover
 * (retryDuringFailover), so the script must be idempotent.
 */
export function evalReplicated(client: Redis, script: string, key: string, ...args: (string | number)[]): Promise<unknown> {
  return retryDuringFailover(client, () => runReplicated(client, 'eval', [script, 1, key, ...args]));
}

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
