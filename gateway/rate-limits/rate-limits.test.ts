/**
 * The rate limiter (gateway/rate-limits): plans from the environment, the
 * sliding windows and leases on a real Redis and in memory (the same
 * scenarios on both, on a controlled clock), concurrent gateways never
 * over-admitting, refusals and their extensions, token corrections, and what
 * happens when Redis is unreachable.
 */
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { parse } from 'graphql';
import { ConfigError } from '../../lib/config';
import type { IdentityClaims } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { startTestRedis, type TestRedis } from '../../test/support/redis';
import { RateLimiter, type RateLimiterOptions } from './limiter';
import { completionTokens, INFERENCE_DEFAULT_MAX_TOKENS } from './operation-tokens';
import { RatePlans } from './plans';
import { LocalRateStore, RedisRateStore, type RateStore } from './stores';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startTestRedis();
}, 30_000);
afterAll(async () => {
  await redis?.stop();
});

/** A clock the test moves; starts mid-second so bucket edges are visible. */
function clock(start = 1_800_000_000_500) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
function recordingLog() {
  const warnings: string[] = [];
  const log: Logger = { ...silent, warn: (message) => void warnings.push(message), child: () => log };
  return { log, warnings };
}

describe('RatePlans', () => {
  it('parses plans, inherits what a plan leaves out from default, and picks a plan by scope, in the order written', () => {
    const plans = RatePlans.parse('default:rpm=600,tpm=100000,streams=8; admin:rpm=6000,tpm=unlimited; pro:rpm=1200; anonymous:rpm=60,ip-rpm=100', 32);
    expect(plans.planFor({ sub: 'u', scopes: ['inference:invoke'] })).toEqual({ name: 'default', rpm: 600, tpm: 100_000, streams: 8, ipRpm: null });
    expect(plans.planFor({ sub: 'u', scopes: ['pro', 'admin'] })).toEqual({ name: 'admin', rpm: 6000, tpm: null, streams: 8, ipRpm: null });
    expect(plans.planFor({ sub: 'u', scopes: ['pro'] }).rpm).toBe(1200);
    expect(RatePlans.parse('knowledge:read:rpm=5,tpm=7', 32).planFor({ sub: 'u', scopes: ['knowledge:read'] })).toMatchObject({ name: 'knowledge:read', rpm: 5, tpm: 7 });
    expect(plans.planFor({ sub: null, scopes: [] })).toEqual({ name: 'anonymous', rpm: 60, tpm: 100_000, streams: 8, ipRpm: 100 });
  });

  it('takes streams from GATEWAY_SUBSCRIPTIONS_PER_USER when default sets none, and limits nothing else when unset', () => {
    expect(RatePlans.parse('anonymous:rpm=10', 32).planFor({ sub: 'u', scopes: [] })).toEqual({ name: 'default', rpm: null, tpm: null, streams: 32, ipRpm: null });
    const unlimited = RatePlans.unlimited(5);
    expect(unlimited.planFor({ sub: null, scopes: [] }).streams).toBe(5);
  });

  it.each([
    ['rpm=5', 'expected "<plan>:<limit>=<value>,…" (plan: default, anonymous or a scope), but got "rpm=5"'],
    ['default:rpm=5;default:tpm=9', 'plan "default" is given twice'],
    ['default:rps=5', 'plan "default" has an unknown limit "rps": expected one of rpm, tpm, streams, ip-rpm'],
    ['default:rpm=0', 'plan "default" sets rpm to "0": expected a positive integer or "unlimited"'],
    ['default:rpm=1.5', 'plan "default" sets rpm to "1.5": expected a positive integer or "unlimited"'],
    ['default:rpm=5,rpm=6', 'plan "default" sets rpm twice'],
    ['admin:', 'plan "admin" sets no limit: expected at least one of rpm, tpm, streams, ip-rpm'],
  ])('refuses %j with a ConfigError naming what is wrong', (text, message) => {
    expect(() => RatePlans.parse(text, 32)).toThrow(new ConfigError(`GATEWAY_RATE_LIMITS: ${message}`));
  });
});

describe('completion tokens charged at admission', () => {
  it('reads maxTokens from literals and variables, defaults it, and sums root completion fields (fragments too)', () => {
    const doc = parse(`mutation M($i: CompletionInput!, $n: Int) {
      a: complete(input: $i) { text }
      b: complete(input: { messages: [], maxTokens: $n }) { text }
      ...F
    }
    fragment F on Mutation { complete(input: { messages: [], maxTokens: 7 }) { text } }`);
    expect(completionTokens(doc, 'M', { i: { messages: [], maxTokens: 100 }, n: 20 })).toBe(127);
    expect(completionTokens(doc, 'M', { i: { messages: [] } })).toBe(2 * INFERENCE_DEFAULT_MAX_TOKENS + 7);
    expect(completionTokens(parse('subscription { completionStream(input: { messages: [], maxTokens: 9 }) { delta } }'), undefined, {})).toBe(9);
    expect(completionTokens(parse('{ models { id } }'), undefined, {})).toBe(0);
  });
});

const stores: Array<[string, (now: () => number) => RateStore]> = [
  ['Redis', (now) => new RedisRateStore(redis.connect(), now)],
  // The same scripts on ioredis-mock: what REDIS_URL=memory:// (npm start without Redis) runs.
  ['the in-memory Redis', (now) => new RedisRateStore(connectRedis('memory://', silent), now)],
  ['memory', (now) => new LocalRateStore(now)],
];

describe.each(stores)('windows and leases in %s', (_name, makeStore) => {
  it('admits up to the limit within 60 s, refuses with the time until enough leaves the window, and admits again then', async () => {
    const time = clock();
    const store = makeStore(time.now);
    const key = `gw:rl:test:${randomUUID()}`;
    for (let i = 0; i < 3; i++) {
      expect((await store.charge([{ key, limit: 5, cost: 1 }])).admitted).toBe(true);
      time.advance(10_000);
    }
    // t = 30.5 s: 3 used; a cost of 3 does not fit until the first bucket (second 0) leaves, at 61 s.
    const refused = await store.charge([{ key, limit: 5, cost: 3 }]);
    expect(refused).toMatchObject({ admitted: false, windows: [{ used: 3, retryMs: 30_500 }] });
    expect((await store.charge([{ key, limit: 5, cost: 2 }])).windows[0]).toEqual({ used: 3, retryMs: 0, resetMs: 30_500 });
    expect((await store.charge([{ key, limit: 5, cost: 1 }])).admitted).toBe(false);
    time.advance(30_499); // 60.999 s: the bucket of second 0 still counts (never less than 60 s of history)
    expect((await store.charge([{ key, limit: 5, cost: 1 }])).admitted).toBe(false);
    time.advance(1);
    expect((await store.charge([{ key, limit: 5, cost: 1 }])).windows[0]).toMatchObject({ used: 4, retryMs: 0 });
  });

  it('charges all or none of several windows, and says when a cost can never fit', async () => {
    const store = makeStore(clock().now);
    const [a, b] = [`gw:rl:test:${randomUUID()}`, `gw:rl:test:${randomUUID()}`];
    expect(
      (
        await store.charge([
          { key: a, limit: 10, cost: 1 },
          { key: b, limit: 100, cost: 100 },
        ])
      ).admitted,
    ).toBe(true);
    const refused = await store.charge([
      { key: a, limit: 10, cost: 1 },
      { key: b, limit: 100, cost: 1 },
    ]);
    expect(refused.admitted).toBe(false);
    expect(refused.windows[0]).toMatchObject({ used: 1, retryMs: 0 });
    expect((await store.charge([{ key: a, limit: 10, cost: 1 }])).windows[0].used).toBe(1); // nothing was counted in `a`
    expect((await store.charge([{ key: a, limit: 10, cost: 11 }])).windows[0].retryMs).toBeNull();
  });

  it('corrects a charge in its own bucket while it is in the window, and only an excess after', async () => {
    const time = clock();
    const store = makeStore(time.now);
    const key = `gw:rl:test:${randomUUID()}`;
    const { bucket } = await store.charge([{ key, limit: 1000, cost: 256 }]);
    await store.correct(key, bucket, 40 - 256);
    expect((await store.charge([{ key, limit: 1000, cost: 0 }])).windows[0].used).toBe(40);
    time.advance(65_000);
    await store.correct(key, bucket, -40); // long gone: nothing to refund
    await store.correct(key, bucket, 30); // an excess counts now
    expect((await store.charge([{ key, limit: 1000, cost: 0 }])).windows[0].used).toBe(30);
  });

  it('holds at most `limit` leases; a lease not renewed (a dead gateway) expires, a renewed one does not', async () => {
    const time = clock();
    const store = makeStore(time.now);
    const key = `gw:rl:streams:test:${randomUUID()}`;
    expect(await store.acquire(key, 2, 'a', 30_000)).toEqual({ admitted: true, held: 1, resetMs: 30_000 });
    time.advance(10_000);
    expect((await store.acquire(key, 2, 'b', 30_000)).admitted).toBe(true);
    expect(await store.acquire(key, 2, 'c', 30_000)).toEqual({ admitted: false, held: 2, resetMs: 20_000 });
    await store.renew([{ key, id: 'b' }], 30_000);
    time.advance(20_000); // a expired, b renewed
    expect((await store.acquire(key, 2, 'c', 30_000)).admitted).toBe(true);
    expect((await store.acquire(key, 2, 'd', 30_000)).admitted).toBe(false);
    await store.release({ key, id: 'c' });
    expect((await store.acquire(key, 2, 'd', 30_000)).admitted).toBe(true);
  });
});

it('two gateways sharing one Redis admit exactly the limit out of 1,000 concurrent requests', async () => {
  const plans = RatePlans.parse('default:rpm=137', 32);
  const options: RateLimiterOptions = { plans, onRedisError: 'closed', redisTimeoutMs: 5_000, leaseMs: 30_000 };
  const gateways = [new RateLimiter(redis.connect(), options, silent), new RateLimiter(redis.connect(), options, silent)];
  const claims: IdentityClaims = { sub: `user-${randomUUID()}`, scopes: [], keyId: randomUUID() };
  const decisions = await Promise.all(Array.from({ length: 1000 }, (_, i) => gateways[i % 2].admit(claims)));
  expect(decisions.filter((d) => d.admitted)).toHaveLength(137);
});

describe('RateLimiter', () => {
  const options = (plans: string, onRedisError: 'open' | 'closed' = 'open'): RateLimiterOptions => ({ plans: RatePlans.parse(plans, 32), onRedisError, redisTimeoutMs: 2_000, leaseMs: 30_000 });

  it('refuses with RATE_LIMITED naming the limit, its scope and when to retry, and reports the tightest quota when admitting', async () => {
    const time = clock();
    const refusals: string[] = [];
    const limiter = new RateLimiter(redis.connect(), options('default:rpm=2,tpm=1000'), silent, { now: time.now, onRefusal: (scope, kind) => refusals.push(`${scope}/${kind}`) });
    const key: IdentityClaims = { sub: `u-${randomUUID()}`, scopes: [], keyId: `k-${randomUUID()}` };
    const first = await limiter.admit(key, 900);
    expect(first).toMatchObject({ admitted: true, quota: { kind: 'tpm', scope: 'key', limit: 1000, remaining: 100, resetSeconds: 61 } });
    const tokens = await limiter.admit(key, 200);
    expect(tokens.admitted).toBe(false);
    if (tokens.admitted) return;
    expect(tokens.error.message).toBe(
      'too many tokens for this API key: this request counts 200 (its maxTokens) and 900 of the limit of 1000 tokens per minute are used (plan "default", a sliding 60 s window); retry in 61 s',
    );
    expect(tokens.error.extensions).toEqual({ code: 'RATE_LIMITED', limit: 1000, scope: 'key', kind: 'tpm', plan: 'default', retryAfter: 61, remaining: 100 });
    time.advance(1000);
    expect((await limiter.admit(key)).admitted).toBe(true);
    const requests = await limiter.admit(key);
    expect(!requests.admitted && requests.error.message).toBe(
      'too many requests for this API key: all 2 of the limit of 2 requests per minute are used (plan "default", a sliding 60 s window); retry in 60 s',
    );
    expect(refusals).toEqual(['key/tpm', 'key/rpm']);
  });

  it('counts a session per user, an anonymous caller per IP, and refuses a cost beyond the limit for good', async () => {
    const limiter = new RateLimiter(redis.connect(), options('default:tpm=100; anonymous:rpm=1'), silent);
    const ip = `10.0.${Math.floor(Math.random() * 255)}.1`;
    expect((await limiter.admit({ sub: null, scopes: [], ip })).admitted).toBe(true);
    const anonymous = await limiter.admit({ sub: null, scopes: [], ip });
    expect(!anonymous.admitted && anonymous.error.extensions).toMatchObject({ scope: 'ip', kind: 'rpm', plan: 'anonymous', limit: 1 });
    expect((await limiter.admit({ sub: null, scopes: [], ip: `${ip}0` })).admitted).toBe(true);
    const never = await limiter.admit({ sub: `u-${randomUUID()}`, scopes: [] }, 101);
    expect(never.admitted).toBe(false);
    if (never.admitted) return;
    expect(never.retryAfter).toBeUndefined();
    expect(never.error.message).toBe(
      'this request counts 101 tokens (its maxTokens), more than the limit of 100 tokens per minute for this user (plan "default"): it can never be admitted; ask for fewer maxTokens',
    );
    expect(never.error.extensions).toMatchObject({ scope: 'user', kind: 'tpm', retryAfter: null });
  });

  it('corrects a token charge with the real usage, once', async () => {
    const limiter = new RateLimiter(redis.connect(), options('default:tpm=500'), silent);
    const user: IdentityClaims = { sub: `u-${randomUUID()}`, scopes: [] };
    const admitted = await limiter.admit(user, 400);
    if (!admitted.admitted) throw new Error('expected admission');
    expect((await limiter.admit(user, 200)).admitted).toBe(false);
    await admitted.tokens!.correct(50);
    await admitted.tokens!.correct(400); // a second correction is ignored
    expect(await limiter.admit(user, 450)).toMatchObject({ admitted: true, quota: { remaining: 0 } });
  });

  it('shares live-stream slots across gateways and frees a slot on release', async () => {
    const opts = options('default:streams=2');
    const [a, b] = [new RateLimiter(redis.connect(), opts, silent), new RateLimiter(redis.connect(), opts, silent)];
    const user: IdentityClaims = { sub: `u-${randomUUID()}`, scopes: [] };
    const first = await a.acquireStream(user);
    expect((await b.acquireStream(user)).admitted).toBe(true);
    const third = await b.acquireStream(user);
    expect(!third.admitted && third.error.message).toBe('too many live subscriptions for this user: the limit is 2 across all gateways (plan "default"), with 2 live; end one before starting another');
    expect(!third.admitted && third.error.extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 2, scope: 'user', kind: 'streams' });
    if (first.admitted) first.lease.release();
    await new Promise((resolve) => setTimeout(resolve, 50)); // the release is sent without being awaited
    expect((await b.acquireStream(user)).admitted).toBe(true);
    a.close();
    b.close();
  });

  describe('with Redis unreachable', () => {
    let dead: Redis;
    beforeAll(() => {
      // Gives up at once (no retries), so nothing is left reconnecting after the tests.
      dead = new Redis('redis://127.0.0.1:1', { retryStrategy: () => null, maxRetriesPerRequest: 0 });
      dead.on('error', () => {});
    });
    // Ended by itself after its one failed attempt; disconnect() would leave a timer behind.
    afterAll(() => expect(dead.status).toBe('end'));

    it('fails open: the same limits in this process, with one warning', async () => {
      const { log, warnings } = recordingLog();
      const limiter = new RateLimiter(dead, options('default:rpm=2,streams=1'), log);
      const user: IdentityClaims = { sub: 'ada', scopes: [] };
      expect((await limiter.admit(user)).admitted).toBe(true);
      expect((await limiter.admit(user)).admitted).toBe(true);
      expect(await limiter.admit(user)).toMatchObject({ admitted: false, error: { extensions: { code: 'RATE_LIMITED' } } });
      expect((await limiter.acquireStream(user)).admitted).toBe(true);
      expect((await limiter.acquireStream(user)).admitted).toBe(false);
      expect(warnings).toEqual(['redis cannot decide rate limits: limiting in this process only until it is back (GATEWAY_RATE_LIMIT_ON_REDIS_ERROR=open)']);
      limiter.close();
    });

    it('fails closed: SERVICE_UNAVAILABLE (503) for limited operations, nothing for unlimited ones', async () => {
      const limiter = new RateLimiter(dead, options('anonymous:rpm=5', 'closed'), silent);
      const refused = await limiter.admit({ sub: null, scopes: [], ip: '10.1.1.1' });
      expect(refused).toMatchObject({ admitted: false, error: { extensions: { code: 'SERVICE_UNAVAILABLE' } } });
      expect(!refused.admitted && refused.error.extensions.code).toBe('SERVICE_UNAVAILABLE');
      expect(!refused.admitted && refused.error.message).toBe(
        'rate limits cannot be checked right now (their store, Redis, is unreachable), and the gateway is configured to refuse rather than run unchecked; retry shortly',
      );
      expect((await limiter.admit({ sub: 'ada', scopes: [] })).admitted).toBe(true); // default plan: no request limit
    });

    it('treats a Redis slower than the timeout as unreachable', async () => {
      const slow = redis.connect();
      const limiter = new RateLimiter(slow, { ...options('default:rpm=5', 'closed'), redisTimeoutMs: 50 }, silent);
      const blocker = redis.connect();
      const blocked = blocker.eval(
        'local t = redis.call("TIME") local s = tonumber(t[1]) * 1000000 + tonumber(t[2]) while true do local n = redis.call("TIME") if tonumber(n[1]) * 1000000 + tonumber(n[2]) - s > 300000 then break end end return 1',
        0,
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await limiter.admit({ sub: `u-${randomUUID()}`, scopes: [] })).toMatchObject({ admitted: false, error: { extensions: { code: 'SERVICE_UNAVAILABLE' } } });
      await blocked;
    });
  });
});
