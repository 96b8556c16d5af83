import path from 'node:path';
import { ConfigError, envInt, envString } from '../../lib/config';
import { identityVerifierFromEnv } from '../../lib/identity';
import { internalRouter } from '../../lib/internal-routes';
import { connectRedis, IN_MEMORY_REDIS_URL } from '../../lib/redis';
import { type RunningService, type ServiceConfig, startSubgraph } from '../../lib/subgraph-service';
import { BalanceStore } from './balance-store';
import { Ledger } from './ledger';
import { PriceStore } from './price-store';
import { reservationRoute } from './reservation-route';
import { ReservationSweeper } from './reservation-sweeper';
import { type BillingContext, resolvers } from './resolvers';
import { UsageSettlement } from './settlement';
import { SpendLimits } from './spend-limits';
import { type UsageEventSource, UsageStreamConsumer } from './usage-consumer';
import { UsageStreamPoller } from './usage-poller';
import { UsageReports } from './usage-reports';

export async function startBilling(config: ServiceConfig): Promise<RunningService> {
  const settings = billingSettings();
  const redis = connectRedis(config.redisUrl, config.log);
  const prices = new PriceStore(redis);
  const pricesFile = envString('BILLING_PRICES_FILE', path.join(__dirname, 'prices.yaml'));
  const { currency, models } = await prices.seedFromFile(pricesFile);
  config.log.info('prices loaded', { file: pricesFile, models, currency });
  const balances = new BalanceStore(redis, settings.freeCreditMicros, currency);
  const ledger = new Ledger(redis, settings);
  const reports = new UsageReports(redis, currency);
  const limits = new SpendLimits(redis);
  const verifier = identityVerifierFromEnv();
  const settlement = new UsageSettlement(redis, ledger, config.log);
  const usage: UsageEventSource =
    config.redisUrl === IN_MEMORY_REDIS_URL
      ? new UsageStreamPoller(redis, settlement, config.log)
      : new UsageStreamConsumer(redis, settlement, config.log, { claimIdleMs: settings.claimIdleMs, streamRetentionMs: settings.streamRetentionMs });
  const sweeper = new ReservationSweeper(ledger, config.log, settings.sweepIntervalMs);
  const reserve = internalRouter([reservationRoute(ledger)], { service: 'billing', verifier, log: config.log });
  await usage.start();
  sweeper.start();
  return startSubgraph<BillingContext>({
    name: 'billing',
    schemaFile: path.join(__dirname, 'schema.graphql'),
    resolvers,
    config,
    redis,
    verifier,
    context: (base) => ({ ...base, balances, prices, ledger, reports, limits }),
    routes: reserve,
    onStop: async () => {
      await usage.stop();
      await sweeper.stop();
    },
  });
}

/** Billing's environment, each variable checked (see README). */
export function billingSettings() {
  const settings = {
    freeCreditMicros: envInt('BILLING_FREE_CREDIT_MICROS', 5_000_000),
    // Longer than the longest generation deadline (5 min), so a live request never loses its hold.
    reservationTtlMs: envInt('BILLING_RESERVATION_TTL_MS', 15 * 60_000, { min: 1_000 }),
    sweepIntervalMs: envInt('BILLING_SWEEP_INTERVAL_MS', 5_000, { min: 10 }),
    claimIdleMs: envInt('BILLING_CLAIM_IDLE_MS', 30_000, { min: 100 }),
    streamRetentionMs: envInt('BILLING_STREAM_RETENTION_MS', 3_600_000, { min: 1_000 }),
    retentionMs: envInt('BILLING_SETTLED_RETENTION_MS', 86_400_000, { min: 1_000 }),
  };
  // A settled marker must outlive every copy of its event that can still be delivered.
  if (settings.retentionMs <= settings.streamRetentionMs + settings.claimIdleMs) {
    throw new ConfigError(
      `BILLING_SETTLED_RETENTION_MS expects more than BILLING_STREAM_RETENTION_MS + BILLING_CLAIM_IDLE_MS (${settings.streamRetentionMs + settings.claimIdleMs}), but got ${settings.retentionMs}`,
    );
  }
  return settings;
}
