/**
 * The Lua scripts behind every rate-limit decision: each decision is one
 * script, so concurrent gateways can never both take the last unit.
 *
 * Requests and tokens use a sliding window of one-second buckets (a hash per
 * counted thing: second → units). A decision counts the buckets of the last
 * `window` seconds plus the current one — between `window` and `window` + 1
 * seconds of history — so it can never admit more than the limit in any
 * `window`-second span; the price is that a unit may be held up to one second
 * longer than a strict window would. Time is Redis's own (TIME): gateways with
 * skewed clocks still agree on the buckets. Tests may pass a time instead.
 * Times in ms are floats (`1000.0`): ioredis-mock's Lua has 32-bit integers.
 */

/** `now_ms` from ARGV[index], or Redis's TIME when the caller passed 0 (every script starts with it). */
const nowMs = (index: number) => `local now_ms = tonumber(ARGV[${index}])
if now_ms == 0 then
  local t = redis.call('TIME')
  now_ms = tonumber(t[1]) * 1000.0 + math.floor(tonumber(t[2]) / 1000)
end`;

/**
 * KEYS: the windows to charge. ARGV: now in ms (0 = Redis TIME), window in
 * seconds, then for each key its limit and cost. Charges every key or none.
 * Returns: admitted (1/0), the current bucket, then per key: units used
 * before this request, ms until it could be admitted (0 when admitted; -1
 * when its cost exceeds the limit, so never), ms until the oldest counted
 * bucket leaves the window.
 */
export const CHARGE_WINDOWS = `
${nowMs(1)}
local window = tonumber(ARGV[2])
local now_s = math.floor(now_ms / 1000)
local oldest = now_s - window
local admitted = 1
local out = { 1, now_s }
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  local flat = redis.call('HGETALL', key)
  local used = 0
  local buckets = {}
  local stale = {}
  for j = 1, #flat, 2 do
    local b = tonumber(flat[j])
    local n = tonumber(flat[j + 1])
    if b < oldest then
      stale[#stale + 1] = flat[j]
    elseif n > 0 then
      used = used + n
      buckets[#buckets + 1] = { b, n }
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  table.sort(buckets, function(x, y) return x[1] < y[1] end)
  local retry = 0
  if used + cost > limit then
    admitted = 0
    retry = -1
    if cost <= limit then
      local left = used
      for _, bucket in ipairs(buckets) do
        left = left - bucket[2]
        if left + cost <= limit then
          retry = (bucket[1] + window + 1) * 1000.0 - now_ms
          break
        end
      end
    end
  end
  local first = now_s
  if buckets[1] then first = buckets[1][1] end
  out[#out + 1] = used
  out[#out + 1] = retry
  out[#out + 1] = (first + window + 1) * 1000.0 - now_ms
end
if admitted == 1 then
  for i, key in ipairs(KEYS) do
    local cost = tonumber(ARGV[2 + 2 * i])
    if cost > 0 then redis.call('HINCRBY', key, now_s, cost) end
    redis.call('PEXPIRE', key, (window + 2) * 1000)
  end
end
out[1] = admitted
-- Rebuilt by a constructor: ioredis-mock (the in-memory store) loses tables grown by assignment.
return { unpack(out) }
`;

/**
 * Corrects a charge once the real cost is known. KEYS: the window. ARGV: the
 * bucket charged, the difference (real − charged), now in ms (0 = TIME),
 * window in seconds. While the bucket is in the window the difference goes
 * there (never below zero); after, only an excess is added, to the current
 * bucket — what has left the window cannot be refunded.
 */
export const CORRECT_WINDOW = `
${nowMs(3)}
local window = tonumber(ARGV[4])
local now_s = math.floor(now_ms / 1000)
local bucket = tonumber(ARGV[1])
local delta = tonumber(ARGV[2])
if bucket >= now_s - window then
  if redis.call('HINCRBY', KEYS[1], bucket, delta) < 0 then redis.call('HSET', KEYS[1], bucket, 0) end
elseif delta > 0 then
  redis.call('HINCRBY', KEYS[1], now_s, delta)
end
redis.call('PEXPIRE', KEYS[1], (window + 2) * 1000)
return 1
`;

/**
 * Takes a live-stream lease. KEYS: the holder's leases (zset lease → expiry
 * ms). ARGV: now in ms (0 = TIME), limit, lease id, lease ms. Expired leases
 * (a gateway that died without releasing) are dropped first. Returns:
 * admitted (1/0), leases held (this one included when admitted), ms until the
 * earliest lease expires.
 */
export const ACQUIRE_LEASE = `
${nowMs(1)}
local limit = tonumber(ARGV[2])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return { 0, held, tonumber(first[2]) - now_ms }
end
redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return { 1, held + 1, ttl }
`;

/**
 * Extends a live lease. KEYS: the holder's zset; ARGV: now in ms (0 = TIME),
 * lease ms, lease id. A lease found missing is put back: its stream is still
 * live, so it still counts.
 */
export const RENEW_LEASE = `
${nowMs(1)}
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now_ms + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
`;
