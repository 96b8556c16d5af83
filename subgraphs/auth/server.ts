import path from 'node:path';
import { envInt, envSecret } from '../../lib/config';
import { sendJson } from '../../lib/http-service';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis } from '../../lib/redis';
import { RunningService, ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { Accounts } from './accounts';
import { AuthContext, resolvers } from './resolvers';
import { loadSessionKey, SessionTokens } from './session-tokens';
import { UserStore } from './user-store';

/** The JWKS path the gateway reads session-token keys from. */
export const JWKS_PATH = '/.well-known/jwks.json';

export async function startAuth(config: ServiceConfig): Promise<RunningService> {
  const redis = connectRedis(config.redisUrl, config.log);
  const key = await loadSessionKey(redis, envSecret('AUTH_SESSION_PRIVATE_KEY'));
  const sessions = new SessionTokens(key, envInt('AUTH_SESSION_TTL_SECONDS', 12 * 3600, { min: 60 }));
  const users = new UserStore(redis);
  const accounts = new Accounts(users, sessions);
  const jwks = await sessions.jwks();
  return startSubgraph<AuthContext>({
    name: 'auth',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, accounts, users }),
    routes: (req, res) => {
      if (req.method !== 'GET' || req.url !== JWKS_PATH) return false;
      sendJson(res, 200, jwks, { 'cache-control': 'public, max-age=300' });
      return true;
    },
  });
}
