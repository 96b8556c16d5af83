import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { LoginThrottle } from './login-throttle';

let redis: Redis;
let throttle: LoginThrottle;

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  await redis.flushall();
  throttle = new LoginThrottle(redis, { maxFailuresPerAccount: 3, maxFailuresPerIp: 5, windowSeconds: 900 });
});

afterEach(() => redis.disconnect());

async function fail(email: string, ip: string | undefined, times: number) {
  for (let i = 0; i < times; i++) expect(await throttle.attempt(email, ip)).toEqual({ allowed: true });
}

describe('LoginThrottle', () => {
  it('allows the configured number of failures per account, then refuses with the time left in the window', async () => {
    await fail('Ada@Example.test', '10.0.0.1', 3);
    const refused = await throttle.attempt(' ada@example.test ', '10.0.0.2');
    expect(refused).toEqual({ allowed: false, by: 'account', retryAfterSeconds: expect.any(Number) });
    expect((refused as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThan(890);
    expect((refused as { retryAfterSeconds: number }).retryAfterSeconds).toBeLessThanOrEqual(900);
    // A refusal is not counted, so hammering does not extend the lock-out.
    expect(await redis.get('auth:login-failures:account:ada@example.test')).toBe('3');
  });

  it('limits failures per address across accounts', async () => {
    for (let i = 0; i < 5; i++) await fail(`user${i}@example.test`, '10.0.0.9', 1);
    expect(await throttle.attempt('fresh@example.test', '10.0.0.9')).toMatchObject({ allowed: false, by: 'ip' });
    expect(await throttle.attempt('fresh@example.test', '10.0.0.10')).toEqual({ allowed: true });
  });

  it("applies only the account limit when the caller's address is unknown", async () => {
    await fail('a@example.test', undefined, 3);
    expect(await throttle.attempt('a@example.test', undefined)).toMatchObject({ allowed: false, by: 'account' });
    expect(await redis.keys('auth:login-failures:ip:*')).toEqual([]);
  });

  it('resets the account on success and gives the address back only the successful attempt', async () => {
    await fail('a@example.test', '10.0.0.1', 3);
    await throttle.succeeded('a@example.test', '10.0.0.1');
    expect(await redis.exists('auth:login-failures:account:a@example.test')).toBe(0);
    expect(await redis.get('auth:login-failures:ip:10.0.0.1')).toBe('2');
    await fail('a@example.test', '10.0.0.1', 3);
  });

  it('starts a fresh window once the old one expires', async () => {
    const short = new LoginThrottle(redis, { maxFailuresPerAccount: 1, maxFailuresPerIp: 5, windowSeconds: 1 });
    expect(await short.attempt('b@example.test', undefined)).toEqual({ allowed: true });
    expect(await short.attempt('b@example.test', undefined)).toEqual({ allowed: false, by: 'account', retryAfterSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    expect(await short.attempt('b@example.test', undefined)).toEqual({ allowed: true });
  });
});
