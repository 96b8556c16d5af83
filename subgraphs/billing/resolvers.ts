import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { codedError, ErrorCode } from '../../lib/errors';
import type { Identity } from '../../lib/identity';
import { DateTimeScalar, MicrosScalar } from '../../lib/scalars';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { BalanceStore } from './balance-store';
import { CountScalar } from './count-scalar';
import type { Ledger } from './ledger';
import type { PriceStore } from './price-store';
import type { SpendLimits } from './spend-limits';
import type { UsageGrouping, UsageReports } from './usage-reports';

export interface BillingContext extends SubgraphContext {
  balances: BalanceStore;
  prices: PriceStore;
  ledger: Ledger;
  reports: UsageReports;
  limits: SpendLimits;
}

type UserRef = { id: string };

/** A user's billing data is theirs alone: anyone else gets NOT_FOUND, worded as for a user that does not exist. */
function requireOwner(identity: Identity, id: string, what: string): void {
  if (identity.sub !== id) throw codedError(ErrorCode.NotFound, `no ${what} for user ${JSON.stringify(id)}`);
}

export const resolvers: GraphQLResolverMap<BillingContext> = {
  Micros: MicrosScalar,
  DateTime: DateTimeScalar,
  Count: CountScalar,
  Mutation: {
    topUp: async (_: unknown, args: { userId: string; amountMicros: number; idempotencyKey: string }, { identity, ledger, balances, log }: BillingContext) => {
      // The gateway enforces @requiresScopes too; money is worth checking twice.
      if (!identity.scopes.includes('admin')) throw codedError(ErrorCode.Forbidden, `topUp requires the "admin" scope, but the caller has ${JSON.stringify(identity.scopes)}`);
      const credited = await ledger.topUp(args.userId, args.amountMicros, args.idempotencyKey);
      log.info(credited ? 'topped up' : 'top-up repeated; credited once', { userId: args.userId, amountMicros: args.amountMicros, by: identity.sub });
      return balances.forUser(args.userId);
    },
    setApiKeySpendLimit: (_: unknown, args: { apiKeyId: string; dailyMicros?: number | null; monthlyMicros?: number | null }, { identity, limits }: BillingContext) => {
      if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, 'setApiKeySpendLimit requires a signed-in user: send "Authorization: Bearer <token>"');
      if (identity.keyId) {
        throw codedError(ErrorCode.Forbidden, 'setApiKeySpendLimit requires a signed-in session, but the request came with an API key (a key must not change its own caps)');
      }
      return limits.set(identity.sub, args.apiKeyId, args.dailyMicros ?? null, args.monthlyMicros ?? null);
    },
  },
  User: {
    __resolveReference: (ref: UserRef) => ({ id: ref.id }),
    balance: ({ id }: UserRef, _: unknown, { identity, balances }: BillingContext) => {
      requireOwner(identity, id, 'balance');
      return balances.forUser(id);
    },
    usage: ({ id }: UserRef, args: { from: Date; to: Date; groupBy: UsageGrouping }, { identity, reports }: BillingContext) => {
      requireOwner(identity, id, 'usage');
      return reports.usage(id, args.from, args.to, args.groupBy);
    },
    invoices: ({ id }: UserRef, args: { first: number }, { identity, reports }: BillingContext) => {
      requireOwner(identity, id, 'invoices');
      return reports.invoices(id, args.first);
    },
    spendLimits: ({ id }: UserRef, _: unknown, { identity, limits }: BillingContext) => {
      requireOwner(identity, id, 'spend limits');
      return limits.list(id);
    },
  },
  Model: {
    __resolveReference: (ref: UserRef) => ({ id: ref.id }),
    pricing: ({ id }: UserRef, _: unknown, { prices }: BillingContext) => prices.forModel(id),
  },
};
