/**
 * The record behind an idempotency key (idempotent-completions.ts): which
 * request first used the key (a fingerprint of its input), who is running it
 * now (a token, under a lease the runner renews), which run of the key it is
 * (its epoch), and, once it finished, its result. Every step is one Lua
 * script on one key, so two replicas that get the same key at once cannot
 * both start it, and a runner whose lease lapsed is replaced by exactly one
 * other. A lease lapses when its runner died, but also when a live runner
 * could not renew it for a whole lease (stalled, or cut off from Redis):
 * then both run. They bill once all the same: the usage event of a run is
 * named by the key and the epoch, which a takeover keeps, and billing
 * settles each event id once; only a run after a failed one (abandoned) is
 * a new epoch, billed on its own. Times come from the master's clock (TIME),
 * so replicas of the subgraph with skewed clocks agree on leases. A claim and
 * a result are confirmed by a replica before they count (on a Cluster or
 * behind Sentinel, lib/redis.ts's runReplicated), as billing's money scripts
 * are.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import { evalReplicated } from '../../../lib/redis';

export interface IdempotencySettings {
  /** How long a finished result is kept for retries. */
  ttlMs: number;
  /** How long a runner holds the key without renewing it; a runner that died frees it after this. */
  leaseMs: number;
}

export type Claim =
  /** The caller runs the request, as run `epoch` of the key; it must `finish` or `abandon` with this token. */
  | { kind: 'run'; token: string; epoch: number }
  /** The request finished before: its result. */
  | { kind: 'done'; result: string }
  /** Another caller runs it; its lease has `leaseLeftMs` to go. */
  | { kind: 'running'; leaseLeftMs: number }
  /** The key was first used for a different input. */
  | { kind: 'conflict' };

const NOW_MS = "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)";

// KEYS[1] record; ARGV fingerprint, token, leaseMs, ttlMs. A run's epoch names its usage event: a takeover of a
// lapsed lease keeps it (the same run, whoever finishes it, is billed once), a run after a failed one gets the next.
const CLAIM = `${NOW_MS}
local record = redis.call('HMGET', KEYS[1], 'fingerprint', 'result', 'lease', 'token', 'epoch', 'failed')
if not record[1] then
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'token', ARGV[2], 'lease', now + tonumber(ARGV[3]), 'epoch', 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'run', '1'}
end
if record[1] ~= ARGV[1] then return {'conflict'} end
if record[2] then return {'done', record[2]} end
-- The same claim sent again (its answer was lost in a failover): it is still this caller's.
if record[4] == ARGV[2] then return {'run', record[5]} end
local epoch = tonumber(record[5])
if record[6] then
  epoch = epoch + 1
else
  local left = tonumber(record[3]) - now
  if left > 0 then return {'running', tostring(left)} end
end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'lease', now + tonumber(ARGV[3]), 'epoch', epoch)
redis.call('HDEL', KEYS[1], 'failed')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'run', tostring(epoch)}`;

// KEYS[1] record; ARGV token, leaseMs, ttlMs. 1 while the token still runs the request; the record outlives the run.
const RENEW = `${NOW_MS}
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'lease', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// KEYS[1] record; ARGV token, result, ttlMs. 1 when stored (the token still ran it).
const FINISH = `if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'result', ARGV[2])
redis.call('HDEL', KEYS[1], 'lease')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// KEYS[1] record; ARGV token. Frees the key at once for a retry, which runs as the next epoch (the failed run billed its own).
const ABANDON = `if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'failed', 1)
redis.call('HDEL', KEYS[1], 'token', 'lease')
return 1`;

export class IdempotencyStore {
  constructor(
    private readonly redis: Redis,
    readonly settings: IdempotencySettings,
  ) {}

  /** The user's key: hashed, so that a key of any length or alphabet makes a Redis key of fixed shape. */
  private recordKey(userId: string, key: string): string {
    return `inference:idempotency:${userId}:${createHash('sha256').update(key).digest('hex')}`;
  }

  /** Claims `key` for `token`; sent again with the same token (after a failover lost its answer), it is the same claim. */
  async claim(userId: string, key: string, fingerprint: string, token: string): Promise<Claim> {
    const [kind, value] = (await evalReplicated(this.redis, CLAIM, this.recordKey(userId, key), fingerprint, token, this.settings.leaseMs, this.settings.ttlMs)) as [string, string?];
    if (kind === 'run') return { kind, token, epoch: Number(value) };
    if (kind === 'done') return { kind, result: value as string };
    if (kind === 'running') return { kind, leaseLeftMs: Number(value) };
    return { kind: 'conflict' };
  }

  async renew(userId: string, key: string, token: string): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.recordKey(userId, key), token, this.settings.leaseMs, this.settings.ttlMs)) === 1;
  }

  async finish(userId: string, key: string, token: string, result: string): Promise<boolean> {
    return (await evalReplicated(this.redis, FINISH, this.recordKey(userId, key), token, result, this.settings.ttlMs)) === 1;
  }

  async abandon(userId: string, key: string, token: string): Promise<void> {
    await this.redis.eval(ABANDON, 1, this.recordKey(userId, key), token);
  }
}
