/**
 * The Lua scripts behind every money change: each change is one script, so it
 * is atomic against every other replica and every other change.
 *
 * The scripts must give the same results on Redis (Lua 5.1: every number a
 * double) and on ioredis-mock, the in-memory mode's store (fengari, Lua 5.3
 * with 32-bit integers that wrap silently). Hence the prelude's discipline:
 * every number is read with `num` (a double in both), integer results are made
 * with `floor` and `ceildiv` (still doubles), and every number handed back to
 * Redis or to the caller goes through `str` (integer digits, never "1e+15" nor
 * "-0"). Doubles are exact up to 2^53; the callers keep every product below
 * that (MAX_TOKENS_PER_EVENT × MAX_PRICE_MICROS_PER_MILLION × 3 parts).
 * ioredis-mock also returns a JS null (truthy userdata) for a missing HMGET
 * field, so fields that may be missing are tested with `type(x) == 'string'`.
 */
const PRELUDE = `
local function num(v) return (tonumber(v) or 0) + 0.0 end
local function str(x) if x == 0 then return '0' end return string.format('%.0f', x) end
local function floor(x) return math.floor(x) + 0.0 end
local function ceildiv(a, b)
  local q = floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  if q * b < a then q = q + 1 end
  return q
end
local function text(v) if type(v) == 'string' then return v end return nil end
local function open_account(key, free_credit, now)
  if redis.call('HSETNX', key, 'granted', free_credit) == 1 then
    redis.call('HSET', key, 'toppedUp', 0, 'held', 0, 'openedAt', now)
  end
end
local function prices(hit, miss, out)
  if hit == '' then return nil end
  return num(hit), num(miss), num(out)
end
`;

/**
 * Holds a request's maximum cost (all prompt tokens priced as cache misses,
 * plus every allowed completion token), idempotent by reservation id.
 *
 * KEYS: reservation, balance, the user's expiring set, key limit, key spend
 * (day), key spend (month), key held. ARGV: reservationId, userId, keyId (''
 * for a session), model, promptTokens, maxCompletionTokens, now (ms), ttl (ms),
 * free credit, cache-miss and output prices ('' when unpriced).
 *
 * Returns {'reserved', amount, expiresAt} | {'exists', amount, expiresAt, state}
 * | {'conflict'} | {'unpriced'} | {'insufficient', needed, available}
 * | {'limit', period, cap, spent, reserved, needed}.
 */
export const RESERVE = `${PRELUDE}
local request = ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[6]
local previous = redis.call('HGET', KEYS[1], 'request')
if previous then
  if previous ~= request then return {'conflict'} end
  local r = redis.call('HMGET', KEYS[1], 'amount', 'expiresAt', 'state')
  return {'exists', str(num(r[1])), str(num(r[2])), text(r[3])}
end
if ARGV[10] == '' then return {'unpriced'} end
local miss, out = num(ARGV[10]), num(ARGV[11])
local amount = ceildiv(num(ARGV[5]) * miss + num(ARGV[6]) * out, 1000000)
open_account(KEYS[2], ARGV[9], ARGV[7])
local b = redis.call('HMGET', KEYS[2], 'granted', 'toppedUp', 'held')
local available = num(b[1]) + num(b[2]) - num(b[3])
if available < amount then return {'insufficient', str(amount), str(available)} end
if ARGV[3] ~= '' then
  local caps = redis.call('HMGET', KEYS[4], 'daily', 'monthly')
  local held = num(redis.call('GET', KEYS[7]))
  local periods = {'DAY', 'MONTH'}
  for i = 1, 2 do
    if text(caps[i]) then
      local cap = num(caps[i])
      local spent = num(redis.call('GET', KEYS[4 + i]))
      if spent + held + amount > cap then
        return {'limit', periods[i], str(cap), str(spent), str(held), str(amount)}
      end
    end
  end
  redis.call('INCRBY', KEYS[7], str(amount))
end
redis.call('HINCRBY', KEYS[2], 'held', str(amount))
local expires_at = num(ARGV[7]) + num(ARGV[8])
redis.call('HSET', KEYS[1], 'userId', ARGV[2], 'keyId', ARGV[3], 'request', request, 'amount', str(amount),
  'createdAt', ARGV[7], 'expiresAt', str(expires_at), 'state', 'held')
redis.call('ZADD', KEYS[3], str(expires_at), ARGV[1])
return {'reserved', str(amount), str(expires_at)}
`;

/**
 * Settles one usage event, idempotent by event id: releases its reservation's
 * hold, charges the real usage (granted credit first, never below zero: what
 * cannot be paid is recorded as shortfall), and books it on the user's day and
 * month aggregates and the key's spend.
 *
 * KEYS: settled marker, balance, reservation, the user's expiring set, usage
 * day, usage month, usage months, key spend (day), key spend (month), key held.
 * ARGV: eventId, reservationId ('' for none), userId, keyId ('' for a session),
 * model, cache-hit tokens, cache-miss tokens, completion tokens, free credit,
 * now (ms), retention of markers and settled reservations (ms), month
 * (YYYY-MM), month score (YYYYMM), key day-spend TTL (ms), key month-spend TTL
 * (ms), cache-hit, cache-miss and output prices ('' when unpriced).
 *
 * Returns {'settled', charge, charged, shortfall, reservation state before}
 * | {'duplicate'} | {'unpriced'} | {'mismatch', field} | {'resettled', by}.
 */
export const SETTLE = `${PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
local hit, miss, out = prices(ARGV[16], ARGV[17], ARGV[18])
if not hit then return {'unpriced'} end
local before = 'none'
local hold = 0
if ARGV[2] ~= '' then
  local r = redis.call('HMGET', KEYS[3], 'userId', 'keyId', 'amount', 'state', 'settledBy')
  if text(r[1]) then
    if r[1] ~= ARGV[3] then return {'mismatch', 'userId'} end
    if text(r[2]) ~= ARGV[4] then return {'mismatch', 'keyId'} end
    before = text(r[4])
    if before == 'settled' then
      if text(r[5]) == ARGV[1] then return {'duplicate'} end
      return {'resettled', text(r[5]) or ''}
    end
    if before == 'held' then hold = num(r[3]) end
  else
    before = 'missing'
  end
end
if hold > 0 then
  redis.call('HINCRBY', KEYS[2], 'held', str(-hold))
  if ARGV[4] ~= '' then redis.call('DECRBY', KEYS[10], str(hold)) end
end
if before == 'held' then redis.call('ZREM', KEYS[4], ARGV[2]) end
if before ~= 'none' and before ~= 'missing' then
  redis.call('HSET', KEYS[3], 'state', 'settled', 'settledBy', ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[11])
end
local charge = ceildiv(num(ARGV[6]) * hit + num(ARGV[7]) * miss + num(ARGV[8]) * out, 1000000)
open_account(KEYS[2], ARGV[9], ARGV[10])
local b = redis.call('HMGET', KEYS[2], 'granted', 'toppedUp')
local granted, topped_up = num(b[1]), num(b[2])
local charged = charge
if charged > granted + topped_up then charged = granted + topped_up end
local from_granted = charged
if from_granted > granted then from_granted = granted end
if from_granted > 0 then redis.call('HINCRBY', KEYS[2], 'granted', str(-from_granted)) end
if charged > from_granted then redis.call('HINCRBY', KEYS[2], 'toppedUp', str(from_granted - charged)) end
local shortfall = charge - charged
local m = ARGV[5]
for k = 5, 6 do
  redis.call('HINCRBY', KEYS[k], m .. '|requests', 1)
  redis.call('HINCRBY', KEYS[k], m .. '|hit', ARGV[6])
  redis.call('HINCRBY', KEYS[k], m .. '|miss', ARGV[7])
  redis.call('HINCRBY', KEYS[k], m .. '|out', ARGV[8])
  redis.call('HINCRBY', KEYS[k], m .. '|amount', str(charged))
  if shortfall > 0 then redis.call('HINCRBY', KEYS[k], m .. '|shortfall', str(shortfall)) end
end
redis.call('ZADD', KEYS[7], ARGV[13], ARGV[12])
if ARGV[4] ~= '' and charged > 0 then
  redis.call('INCRBY', KEYS[8], str(charged))
  redis.call('PEXPIRE', KEYS[8], ARGV[14])
  redis.call('INCRBY', KEYS[9], str(charged))
  redis.call('PEXPIRE', KEYS[9], ARGV[15])
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[11])
return {'settled', str(charge), str(charged), str(shortfall), before}
`;

/**
 * Releases one reservation if it is still held and has expired; safe to run
 * from several replicas at once (the second finds it no longer held).
 *
 * KEYS: reservation, the user's expiring set, balance, key held. ARGV: reservationId, now
 * (ms), retention (ms), userId and keyId the caller read (the keys were
 * derived from them). Returns 'released' | 'live' | 'gone'.
 */
export const RELEASE_EXPIRED = `${PRELUDE}
local r = redis.call('HMGET', KEYS[1], 'userId', 'keyId', 'amount', 'state', 'expiresAt')
if text(r[1]) ~= ARGV[4] or text(r[2]) ~= ARGV[5] or text(r[4]) ~= 'held' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 'gone'
end
if num(r[5]) > num(ARGV[2]) then return 'live' end
local amount = num(r[3])
redis.call('HINCRBY', KEYS[3], 'held', str(-amount))
if ARGV[5] ~= '' then redis.call('DECRBY', KEYS[4], str(amount)) end
redis.call('HSET', KEYS[1], 'state', 'expired')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'released'
`;

/**
 * Sweeper bookkeeping (the users' index, shared by all users, so never in a
 * script with a user's keys). Marks a user as possibly holding a reservation
 * that expires at `expiresAt`: keeps the earliest expiry, and bumps the
 * user's version, which tells a sweeper that looked at the user before this
 * call not to forget them (FORGET_USER).
 *
 * KEYS: users index, versions. ARGV: userId, expiresAt (ms).
 */
export const INDEX_USER = `${PRELUDE}
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local score = text(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if not score or num(score) > num(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
return 1
`;

/**
 * After a sweeper released a user's expired reservations: moves the user to
 * their next expiry, or forgets them when they hold nothing, but only if no
 * reservation indexed them since the sweeper read `version` (then their
 * own INDEX_USER score stands, lowered to the next expiry if that is earlier).
 *
 * KEYS: users index, versions. ARGV: userId, version read before the sweep
 * ('' when none), next expiry (ms, '' when the user holds nothing).
 */
export const REINDEX_USER = `${PRELUDE}
local version = text(redis.call('HGET', KEYS[2], ARGV[1])) or ''
if version == ARGV[2] then
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
  else
    redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  end
elseif ARGV[3] ~= '' then
  local score = text(redis.call('ZSCORE', KEYS[1], ARGV[1]))
  if not score or num(score) > num(ARGV[3]) then redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) end
end
return 1
`;

/**
 * Step one of a top-up: the idempotency key is claimed for good for one user
 * and amount (the key is shared by all users, so its check cannot be in the
 * user's script). Claiming again with the same user and amount is allowed, so
 * a retry after a crash between the steps finishes the top-up.
 *
 * KEYS: claim. ARGV: userId, amount, now (ms). Returns {'claimed'}
 * | {'conflict', userId, amount}.
 */
export const CLAIM_TOP_UP = `${PRELUDE}
local previous = redis.call('HMGET', KEYS[1], 'userId', 'amount')
if text(previous[1]) then
  if previous[1] ~= ARGV[1] or num(previous[2]) ~= num(ARGV[2]) then return {'conflict', previous[1], str(num(previous[2]))} end
  return {'claimed'}
end
redis.call('HSET', KEYS[1], 'userId', ARGV[1], 'amount', ARGV[2], 'at', ARGV[3])
return {'claimed'}
`;

/**
 * Step two of a top-up: credits the user once per idempotency key.
 *
 * KEYS: the user's credited marker, balance. ARGV: amount, free credit, now
 * (ms), maximum total balance. Returns {'credited'} | {'duplicate'}
 * | {'too-large', total}.
 */
export const TOP_UP = `${PRELUDE}
if redis.call('EXISTS', KEYS[1]) == 1 then return {'duplicate'} end
open_account(KEYS[2], ARGV[2], ARGV[3])
local b = redis.call('HMGET', KEYS[2], 'granted', 'toppedUp')
local total = num(b[1]) + num(b[2])
if total + num(ARGV[1]) > num(ARGV[4]) then return {'too-large', str(total)} end
redis.call('HINCRBY', KEYS[2], 'toppedUp', ARGV[1])
redis.call('SET', KEYS[1], ARGV[3])
return {'credited'}
`;
