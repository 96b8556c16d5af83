import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { DateTimeScalar } from '../../lib/scalars';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { Accounts } from './accounts';
import type { User, UserStore } from './user-store';

export interface AuthContext extends SubgraphContext {
  accounts: Accounts;
  users: UserStore;
}

export const resolvers: GraphQLResolverMap<AuthContext> = {
  DateTime: DateTimeScalar,
  Query: {
    me: (_: unknown, __: unknown, { identity, users }: AuthContext) => (identity.sub ? users.byId(identity.sub) : null),
  },
  Mutation: {
    signUp: (_: unknown, args: { email: string; password: string; name: string }, { accounts }: AuthContext) =>
      accounts.signUp(args.email, args.password, args.name),
    login: (_: unknown, args: { email: string; password: string }, { accounts }: AuthContext) => accounts.login(args.email, args.password),
  },
  User: {
    // Other subgraphs only ever reference the caller's own user; anyone else's resolves to null.
    __resolveReference: (ref: { id: string }, { identity, users }: AuthContext): Promise<User | null> | null =>
      identity.sub === ref.id ? users.byId(ref.id) : null,
  },
};
