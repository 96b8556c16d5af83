import type { Logger } from './log';

/**
 * Drains on the first SIGTERM or SIGINT, then exits: 0 once `stop` resolves,
 * 1 if it fails. Every Sluice process shuts down through this one path.
 */
export function exitOnSignals(log: Logger, stop: () => Promise<void>, describe: () => Record<string, unknown> = () => ({})): void {
  const onSignal = (signal: NodeJS.Signals) => {
    log.info('draining', { signal, ...describe() });
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('stop failed', { error });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
