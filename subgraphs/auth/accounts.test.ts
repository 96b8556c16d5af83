import type Redis from 'ioredis';
import { GraphQLError } from 'graphql';
import { decodeJwt } from 'jose';
import type { Identity } from '../../lib/identity';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { Accounts } from './accounts';
import { LoginThrottle } from './login-throttle';
import { KeySealer } from './key-sealing';
import { SignUpLimit } from './sign-up-limit';
import { SessionKeyRing } from './session-key-ring';
import { SessionStore } from './session-store';
import { SessionTokens } from './session-tokens';
import { UserStore } from './user-store';

const PASSWORD = 'correct horse battery';
let redis: Redis;
let sessions: SessionStore;
let accounts: Accounts;

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  await redis.flushall();
  sessions = new SessionStore(redis, 3_600_000);
  const ring = await SessionKeyRing.open(redis, { retainMs: 3_600_000, sealer: new KeySealer('a sealing secret for the tests') });
  const throttle = new LoginThrottle(redis, { maxFailuresPerAccount: 2, maxFailuresPerIp: 50, windowSeconds: 60 });
  accounts = new Accounts(new UserStore(redis), new SessionTokens(ring, sessions, 3600), sessions, throttle, ['Root@Example.test'], new SignUpLimit(redis, { perIp: 3, windowSeconds: 60 }));
});

afterEach(() => redis.disconnect());

const identity = (claims: Partial<Identity>): Identity => ({ sub: 'u1', scopes: [], iat: 0, exp: 0, ...claims });

async function rejection(promise: Promise<unknown>): Promise<GraphQLError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  return error as GraphQLError;
}

describe('Accounts', () => {
  it('gives sessions the admin scope only for accounts listed as admins', async () => {
    const admin = await accounts.signUp('root@example.test', PASSWORD, 'Root');
    const user = await accounts.signUp('user@example.test', PASSWORD, 'User');
    expect(decodeJwt(admin.token).scopes).toContain('admin');
    expect(decodeJwt(user.token).scopes).toEqual(['inference:invoke', 'knowledge:read', 'knowledge:write', 'billing:read']);
  });

  it('limits sign-up attempts per address: past the limit RATE_LIMITED with retryAfter, no account made; other addresses unaffected', async () => {
    await accounts.signUp('s1@example.test', PASSWORD, 'S', '10.0.0.9');
    await rejection(accounts.signUp('s1@example.test', PASSWORD, 'S', '10.0.0.9')); // an attempt that fails counts too
    await accounts.signUp('s2@example.test', PASSWORD, 'S', '10.0.0.9');
    const refused = await rejection(accounts.signUp('s3@example.test', PASSWORD, 'S', '10.0.0.9'));
    expect(refused.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: expect.any(Number), limit: { signUps: 3, windowSeconds: 60, per: 'ip' } });
    expect(refused.message).toMatch(/^signUp refused: too many sign-ups from this address \(at most 3 per 60 s\); try again in \d+ s$/);
    expect(await redis.exists('auth:email:s3@example.test')).toBe(0);
    await accounts.signUp('s3@example.test', PASSWORD, 'S', '10.0.0.10');
  });

  it('throttles before checking the password: past the limit even the right password is RATE_LIMITED with retryAfter', async () => {
    await accounts.signUp('a@example.test', PASSWORD, 'A');
    for (let i = 0; i < 2; i++) expect((await rejection(accounts.login('a@example.test', 'wrong password', '10.0.0.1'))).extensions!.code).toBe('UNAUTHENTICATED');
    const throttled = await rejection(accounts.login('a@example.test', PASSWORD, '10.0.0.1'));
    expect(throttled.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: expect.any(Number), limit: { failures: 2, windowSeconds: 60, per: 'account' } });
    expect(throttled.message).toMatch(/^login refused: too many failed logins for this account \(at most 2 per 60 s\); try again in \d+ s$/);
  });

  it("resets the account's failures after a successful login", async () => {
    await accounts.signUp('b@example.test', PASSWORD, 'B');
    await rejection(accounts.login('b@example.test', 'wrong password', undefined));
    await accounts.login('b@example.test', PASSWORD, undefined);
    await rejection(accounts.login('b@example.test', 'wrong password', undefined));
    expect((await accounts.login('b@example.test', PASSWORD, undefined)).user.email).toBe('b@example.test');
  });

  it('logs out the session the caller used, and refuses API-key callers, pointing to revokeApiKey', async () => {
    const { token } = await accounts.signUp('c@example.test', PASSWORD, 'C');
    const sessionId = decodeJwt(token).jti as string;
    expect(await sessions.isRevoked(sessionId)).toBe(false);
    expect(await accounts.logout(identity({ sessionId }))).toBe(true);
    expect(await sessions.isRevoked(sessionId)).toBe(true);

    const withKey = await rejection(accounts.logout(identity({ keyId: 'k1' })));
    expect(withKey.extensions!.code).toBe('BAD_USER_INPUT');
    expect(withKey.message).toContain('revokeApiKey');
    expect((await rejection(accounts.logout(identity({})))).extensions!.code).toBe('BAD_USER_INPUT');
  });
});
