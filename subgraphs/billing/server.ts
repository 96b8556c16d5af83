import path from 'node:path';
import { envInt, envString } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { connectRedis } from '../../lib/redis';
import { RunningService, ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { BalanceStore } from './balance-store';
import { PriceStore } from './price-store';
import { BillingContext, resolvers } from './resolvers';

export async function startBilling(config: ServiceConfig): Promise<RunningService> {
  const redis = connectRedis(config.redisUrl, config.log);
  const prices = new PriceStore(redis);
  const pricesFile = envString('BILLING_PRICES_FILE', path.join(__dirname, 'prices.yaml'));
  const { currency, models } = await prices.seedFromFile(pricesFile);
  config.log.info('prices loaded', { file: pricesFile, models, currency });
  const balances = new BalanceStore(redis, envInt('BILLING_FREE_CREDIT_MICROS', 5_000_000), currency);
  return startSubgraph<BillingContext>({
    name: 'billing',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier: identityVerifierFromEnv(),
    context: (base) => ({ ...base, balances, prices }),
  });
}
