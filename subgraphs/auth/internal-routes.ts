import { ErrorCode } from '../../lib/errors';
import { type InternalRoute, RouteRefusal } from '../../lib/internal-routes';
import type { ApiKeys } from './api-keys';
import type { SessionStore } from './session-store';

/**
 * The routes the gateway calls outside GraphQL to authenticate callers (the
 * issue's shared contract). An anonymous identity will do: the gateway asks
 * before it knows who the caller is.
 */
export const VERIFY_API_KEY_PATH = '/internal/api-keys/verify';
export const SESSION_STATUS_PATH = '/internal/sessions/status';

/** The gateway tells this refusal from auth refusing the gateway itself by its message; it never says why a key is invalid. */
const INVALID_KEY = 'the API key is not valid';

export function authInternalRoutes(deps: { apiKeys: ApiKeys; sessions: SessionStore }): InternalRoute[] {
  const verifyKey: InternalRoute = {
    path: VERIFY_API_KEY_PATH,
    body: '{"secret": "sk-..."}',
    unavailable: 'auth could not check the API key (its store may be unreachable)',
    async handle(body) {
      if (typeof body.secret !== 'string') throw new RouteRefusal(ErrorCode.BadUserInput, `${VERIFY_API_KEY_PATH} expects a JSON body ${verifyKey.body}`);
      const key = await deps.apiKeys.verify(body.secret);
      if (!key) throw new RouteRefusal(ErrorCode.Unauthenticated, INVALID_KEY);
      return { sub: key.userId, scopes: key.scopes, keyId: key.id };
    },
  };
  const sessionStatus: InternalRoute = {
    path: SESSION_STATUS_PATH,
    body: '{"sessionId": "<jti>"}',
    unavailable: 'auth could not read the session (its store may be unreachable)',
    async handle(body) {
      if (typeof body.sessionId !== 'string' || body.sessionId === '') {
        throw new RouteRefusal(ErrorCode.BadUserInput, `${SESSION_STATUS_PATH} expects a JSON body ${sessionStatus.body}`);
      }
      return { revoked: await deps.sessions.isRevoked(body.sessionId) };
    },
  };
  return [verifyKey, sessionStatus];
}
