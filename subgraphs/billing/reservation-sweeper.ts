import type { Logger } from '../../lib/log';
import type { Ledger } from './ledger';

/** Users per pass. */
const BATCH = 100;

/**
 * Releases reservations whose request never settled (inference crashed, or
 * its usage event is stuck) once they expire, user by user from the index of
 * users who may hold one. Every billing replica runs one: each release is a
 * script that first checks the reservation is still held, so two replicas
 * sweeping together release each hold once.
 */
export class ReservationSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly ledger: Ledger,
    private readonly log: Logger,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.sweep().finally(() => (this.running = undefined));
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Releases every reservation expired by `now`; returns how many. */
  async sweep(now = Date.now()): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const { released, more } = await this.ledger.releaseExpired(now, BATCH);
        total += released;
        if (!more) break;
      }
    } catch (error) {
      this.log.warn('reservation sweep failed; will retry', { error });
    }
    if (total > 0) this.log.info('released expired reservations', { released: total });
    return total;
  }
}
