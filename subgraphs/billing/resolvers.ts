import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { codedError, ErrorCode } from '../../lib/errors';
import { MicrosScalar } from '../../lib/scalars';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { BalanceStore } from './balance-store';
import type { PriceStore } from './price-store';

export interface BillingContext extends SubgraphContext {
  balances: BalanceStore;
  prices: PriceStore;
}

export const resolvers: GraphQLResolverMap<BillingContext> = {
  Micros: MicrosScalar,
  User: {
    __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
    balance: ({ id }: { id: string }, _: unknown, { identity, balances }: BillingContext) => {
      if (identity.sub !== id) throw codedError(ErrorCode.NotFound, `no balance for user ${JSON.stringify(id)}`);
      return balances.forUser(id);
    },
  },
  Model: {
    __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
    pricing: ({ id }: { id: string }, _: unknown, { prices }: BillingContext) => prices.forModel(id),
  },
};
