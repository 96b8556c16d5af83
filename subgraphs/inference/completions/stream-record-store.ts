/**
 * The record behind a resumable stream's key (resumable-streams.ts): the
 * input it was begun with (a fingerprint), the seed and model version every
 * run of it generates with, how many runs it has had, and what has been
 * billed for it so far. Every step is one Lua script on one key, answered once
 * a replica has it (on a Cluster or behind Sentinel, lib/redis.ts's
 * runReplicated), so two runs that end at once — a run cut off with its
 * gateway that has not noticed yet, and the run that resumed it — cannot both
 * bill the same tokens.
 *
 * Billing is by high-water mark: each run reports the usage of the whole text
 * up to where it ended (the client's earlier text included, since it
 * regenerated it), and is billed what that adds to the most any run has billed:
 * the prompt once, completion tokens past the mark. So a stream resumed any
 * number of times costs what one run to its furthest point would, whichever
 * run ends first. A run's answer is kept under its number, so a settle sent
 * again after a failover lost its answer bills nothing twice.
 */
import { createHash, randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { evalReplicated } from '../../../lib/redis';

export type StreamRunClaim =
  /**
   * Run number `run` of the stream, to generate with `seed` on `version` of the model. `streamId` names the
   * stream (not the key: a key used again after its record expired is another stream, with another id).
   */
  | { kind: 'run'; streamId: string; run: number; seed: number; version: string }
  /** A resume of a stream that never began, or whose record expired. */
  | { kind: 'missing' }
  /** The key was first used for a different input. */
  | { kind: 'conflict' };

/** What one run adds to the stream's bill. */
export interface BilledShare {
  promptTokens: number;
  promptCacheHitTokens: number;
  completionTokens: number;
}

// KEYS[1] record; ARGV fingerprint, seed, model version, ttlMs, '1' when resuming (the record must exist), the id
// a new stream gets.
const BEGIN = `local r = redis.call('HMGET', KEYS[1], 'fingerprint', 'seed', 'version', 'stream')
if not r[1] then
  if ARGV[5] == '1' then return {'missing'} end
  redis.call('HSET', KEYS[1], 'fingerprint', ARGV[1], 'seed', ARGV[2], 'version', ARGV[3], 'stream', ARGV[6], 'runs', 1, 'prompt', 0, 'out', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'run', '1', ARGV[2], ARGV[3], ARGV[6]}
end
if r[1] ~= ARGV[1] then return {'conflict'} end
local runs = redis.call('HINCRBY', KEYS[1], 'runs', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'run', tostring(runs), r[2], r[3], r[4]}`;

// KEYS[1] record; ARGV run, prompt tokens, of them cache hits, completion tokens, ttlMs, stream id.
// Returns the run's share as "prompt,hit,completion"; the same answer every time for one run. A run whose stream's
// record is gone (or is another stream's, its key used again) is billed all it used: there is no mark to go by.
const SETTLE = `if redis.call('HGET', KEYS[1], 'stream') ~= ARGV[6] then return ARGV[2] .. ',' .. ARGV[3] .. ',' .. ARGV[4] end
local field = 'settled:' .. ARGV[1]
local kept = redis.call('HGET', KEYS[1], field)
if kept then return kept end
local r = redis.call('HMGET', KEYS[1], 'prompt', 'out')
local prompt, hit, out = 0, 0, 0
if (tonumber(r[1]) or 0) == 0 and tonumber(ARGV[2]) > 0 then
  prompt, hit = tonumber(ARGV[2]), tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'prompt', prompt)
end
local billed = tonumber(r[2]) or 0
if tonumber(ARGV[4]) > billed then
  out = tonumber(ARGV[4]) - billed
  redis.call('HSET', KEYS[1], 'out', ARGV[4])
end
local share = prompt .. ',' .. hit .. ',' .. out
redis.call('HSET', KEYS[1], field, share)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return share`;

export class StreamRecordStore {
  constructor(
    private readonly redis: Redis,
    /** How long a stream can be resumed after its last run began or ended. */
    readonly ttlMs: number,
  ) {}

  /** Hashed, so that a key of any length or alphabet makes a Redis key of fixed shape. */
  private recordKey(userId: string, key: string): string {
    return `inference:stream:${userId}:${createHash('sha256').update(key).digest('hex')}`;
  }

  /**
   * Begins a run of the user's stream `key`: the first (which records `seed` and `version`), or a resume
   * (`resuming`: only of a stream that began). A begin sent again after a failover lost its answer counts one
   * more run, which only leaves a run number unused; a first begin sent again is a resume of the stream it began.
   */
  async begin(userId: string, key: string, stream: { fingerprint: string; seed: number; version: string; resuming: boolean }): Promise<StreamRunClaim> {
    const answer = (await evalReplicated(
      this.redis,
      BEGIN,
      this.recordKey(userId, key),
      stream.fingerprint,
      stream.seed,
      stream.version,
      this.ttlMs,
      stream.resuming ? '1' : '0',
      randomUUID(),
    )) as string[];
    if (answer[0] === 'run') return { kind: 'run', run: Number(answer[1]), seed: Number(answer[2]), version: answer[3], streamId: answer[4] };
    return { kind: answer[0] === 'missing' ? 'missing' : 'conflict' };
  }

  /** Run `run` of stream `streamId` ended having used `usage` for the whole text so far: what it adds to the bill. */
  async settle(userId: string, key: string, streamId: string, run: number, usage: BilledShare): Promise<BilledShare> {
    const share = (await evalReplicated(this.redis, SETTLE, this.recordKey(userId, key), run, usage.promptTokens, usage.promptCacheHitTokens, usage.completionTokens, this.ttlMs, streamId)) as string;
    const [promptTokens, promptCacheHitTokens, completionTokens] = share.split(',').map(Number);
    return { promptTokens, promptCacheHitTokens, completionTokens };
  }
}
