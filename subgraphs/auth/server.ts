import path from 'node:path';
import { envInt, envSecret, envString } from '../../lib/config';
import { ErrorCode, httpStatusFor } from '../../lib/errors';
import { sendJson } from '../../lib/http-service';
import { identityVerifierFromEnv } from '../../lib/identity';
import { internalRouter } from '../../lib/internal-routes';
import { connectRedis } from '../../lib/redis';
import { type RunningService, type ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { Accounts } from './accounts';
import { ApiKeyStore } from './api-key-store';
import { ApiKeys } from './api-keys';
import { authInternalRoutes } from './internal-routes';
import { LoginThrottle } from './login-throttle';
import { type AuthContext, resolvers } from './resolvers';
import { keySealerFromEnv } from './key-sealing';
import { SessionKeyRing } from './session-key-ring';
import { SignUpLimit } from './sign-up-limit';
import { SessionStore } from './session-store';
import { SessionTokens } from './session-tokens';
import { UserStore } from './user-store';

/** The JWKS path the gateway reads session-token keys from. */
export const JWKS_PATH = '/.well-known/jwks.json';

/**
 * How long anything between the gateway and auth may cache the JWKS. Short,
 * because a rotation publishes a new key that new tokens name at once (the
 * gateway itself re-fetches when a token names a key id it does not know).
 */
const JWKS_MAX_AGE_SECONDS = 10;

/** A retired key stays published this much longer than the session lifetime, for clock skew and in-flight logins. */
const KEY_RETENTION_MARGIN_MS = 60_000;

export async function startAuth(config: ServiceConfig): Promise<RunningService> {
  const redis = connectRedis(config.redisUrl, config.log);
  const verifier = identityVerifierFromEnv();
  const ttlSeconds = envInt('AUTH_SESSION_TTL_SECONDS', 12 * 3600, { min: 60 });
  const sessionKeys = await SessionKeyRing.open(redis, {
    retainMs: ttlSeconds * 1000 + KEY_RETENTION_MARGIN_MS,
    privateKeyPem: envSecret('AUTH_SESSION_PRIVATE_KEY'),
    sealer: keySealerFromEnv(),
  });
  const sessions = new SessionStore(redis, ttlSeconds * 1000);
  const throttle = new LoginThrottle(redis, {
    maxFailuresPerAccount: envInt('AUTH_LOGIN_MAX_FAILURES_PER_ACCOUNT', 10, { min: 1 }),
    maxFailuresPerIp: envInt('AUTH_LOGIN_MAX_FAILURES_PER_IP', 50, { min: 1 }),
    windowSeconds: envInt('AUTH_LOGIN_WINDOW_SECONDS', 15 * 60, { min: 1 }),
  });
  const users = new UserStore(redis);
  const adminEmails = envString('AUTH_ADMIN_EMAILS', '')
    .split(',')
    .map((email) => email.trim())
    .filter(Boolean);
  const signUps = new SignUpLimit(redis, {
    perIp: envInt('AUTH_SIGNUPS_PER_IP', 100, { min: 1 }),
    windowSeconds: envInt('AUTH_SIGNUP_WINDOW_SECONDS', 3600, { min: 1 }),
  });
  const accounts = new Accounts(users, new SessionTokens(sessionKeys, sessions, ttlSeconds), sessions, throttle, adminEmails, signUps);
  const apiKeys = new ApiKeys(new ApiKeyStore(redis));
  const internal = internalRouter(authInternalRoutes({ apiKeys, sessions }), { service: 'auth', verifier, log: config.log });
  return startSubgraph<AuthContext>({
    name: 'auth',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier,
    context: (base) => ({ ...base, accounts, users, apiKeys, sessionKeys }),
    routes: (req, res) => {
      if (internal(req, res)) return true;
      if (req.method !== 'GET' || req.url !== JWKS_PATH) return false;
      sessionKeys.jwks().then(
        (jwks) => sendJson(res, 200, jwks, { 'cache-control': `public, max-age=${JWKS_MAX_AGE_SECONDS}` }),
        (error: unknown) => {
          config.log.error('could not read the session keys', { error });
          sendJson(res, httpStatusFor(ErrorCode.ServiceUnavailable), { error: 'the session keys could not be read', code: ErrorCode.ServiceUnavailable });
        },
      );
      return true;
    },
  });
}
