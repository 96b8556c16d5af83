import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { ErrorCode, codedError } from '../../lib/errors';
import type { Identity } from '../../lib/identity';
import { DateTimeScalar } from '../../lib/scalars';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { Accounts } from './accounts';
import type { ApiKey } from './api-key-store';
import type { ApiKeys } from './api-keys';
import { ADMIN_SCOPE, SCOPES } from './scopes';
import type { SessionKeyRing } from './session-key-ring';
import type { User, UserStore } from './user-store';

export interface AuthContext extends SubgraphContext {
  accounts: Accounts;
  users: UserStore;
  apiKeys: ApiKeys;
  sessionKeys: SessionKeyRing;
}

/**
 * The schema's @authenticated and @requiresScopes are enforced by the gateway;
 * these checks repeat them, because a subgraph trusts only the signed identity,
 * never that the gateway filtered the operation.
 */
function signedIn(identity: Identity, field: string): string {
  if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, `${field} requires a signed-in caller, but the request carried no credentials`, { field });
  return identity.sub;
}

/**
 * Key management needs a session: a leaked API key must not be able to mint
 * keys that outlive its own revocation, or revoke its owner's other keys.
 */
function fromSession(identity: Identity, field: string): string {
  const sub = signedIn(identity, field);
  if (identity.keyId) {
    throw codedError(ErrorCode.Forbidden, `${field} needs a signed-in session, but the request used an API key: API keys cannot create or revoke API keys; log in and use the session token`, {
      field,
    });
  }
  return sub;
}

function requireScope(identity: Identity, scope: string, field: string): void {
  signedIn(identity, field);
  if (!identity.scopes.includes(scope)) {
    throw codedError(ErrorCode.Forbidden, `${field} requires the scope "${scope}", but the caller has ${identity.scopes.join(', ') || 'none'}`, {
      field,
      missingScopes: [scope],
    });
  }
}

export const resolvers: GraphQLResolverMap<AuthContext> = {
  DateTime: DateTimeScalar,
  // GraphQL enum names ↔ the scope strings credentials carry.
  Scope: SCOPES,
  Query: {
    me: (_: unknown, __: unknown, { identity, users }: AuthContext) => (identity.sub ? users.byId(identity.sub) : null),
  },
  Mutation: {
    signUp: (_: unknown, args: { email: string; password: string; name: string }, { accounts, identity }: AuthContext) => accounts.signUp(args.email, args.password, args.name, identity.ip),
    login: (_: unknown, args: { email: string; password: string }, { accounts, identity }: AuthContext) => accounts.login(args.email, args.password, identity.ip),
    logout: (_: unknown, __: unknown, { accounts, identity }: AuthContext) => {
      signedIn(identity, 'logout');
      return accounts.logout(identity);
    },
    createApiKey: (_: unknown, args: { name: string; scopes: string[] }, { apiKeys, identity }: AuthContext) =>
      apiKeys.create(fromSession(identity, 'createApiKey'), identity.scopes, args.name, args.scopes),
    revokeApiKey: (_: unknown, args: { id: string }, { apiKeys, identity }: AuthContext) => apiKeys.revoke(fromSession(identity, 'revokeApiKey'), args.id),
    rotateSessionKey: (_: unknown, __: unknown, { sessionKeys, identity }: AuthContext) => {
      requireScope(identity, ADMIN_SCOPE, 'rotateSessionKey');
      return sessionKeys.rotate();
    },
  },
  User: {
    // Other subgraphs only ever reference the caller's own user; anyone else's resolves to null.
    __resolveReference: (ref: { id: string }, { identity, users }: AuthContext): Promise<User | null> | null => (identity.sub === ref.id ? users.byId(ref.id) : null),
    // Only the owner lists their keys; on anyone else's User (if one were ever reachable) the list is empty.
    apiKeys: (user: User, _: unknown, { apiKeys, identity }: AuthContext): Promise<ApiKey[]> | ApiKey[] => (identity.sub === user.id ? apiKeys.list(user.id) : []),
  },
};
