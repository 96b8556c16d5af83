import type Redis from 'ioredis';
import type { Logger } from '../../lib/log';
import { USAGE_EVENTS_STREAM } from '../../lib/usage-events';
import { billingKeys } from './keys';
import { toEntries, type UsageSettlement } from './settlement';
import type { UsageEventSource } from './usage-consumer';

export interface UsagePollerOptions {
  /** Pause between polls when the stream had nothing new. @default 50 ms */
  intervalMs?: number;
  /** @default 256 */
  batchSize?: number;
}

/**
 * The in-memory mode's stand-in for the consumer group (ioredis-mock refuses
 * XGROUP/XREADGROUP): the producer's XADD is unchanged, and this reads the
 * stream in order with XRANGE from a cursor kept in the store
 * (`billing:usage-events:cursor`), moving the cursor only after the batch is
 * settled. So delivery is at least once, as with the group, and settlement
 * stays idempotent by event id, so a batch read twice (a stop between
 * settling and moving the cursor) is still charged once.
 *
 * It relies on ioredis-mock numbering entries `1-0`, `2-0`, … and reading a
 * bare number as a range start (`XRANGE key 5 +`); the mock cannot delete or
 * trim stream entries, so the stream grows for the life of the process (as
 * does everything in that mode: nothing is kept when it ends). One process is
 * the whole in-memory deployment, so there is no second replica to share with.
 */
export class UsageStreamPoller implements UsageEventSource {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly settlement: UsageSettlement,
    private readonly log: Logger,
    private readonly options: UsagePollerOptions = {},
  ) {}

  async start(): Promise<void> {
    this.loop = this.run();
    this.log.info('usage poller started (in-memory mode: no consumer groups)', { stream: USAGE_EVENTS_STREAM });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
  }

  /** Settles what the stream holds past the cursor, up to one batch; returns how many entries it read. */
  async pollOnce(): Promise<number> {
    const cursor = await this.redis.get(billingKeys.usagePollerCursor);
    const start = cursor === null ? '-' : String(Number(cursor.split('-')[0]) + 1);
    const entries = toEntries(await this.redis.xrange(USAGE_EVENTS_STREAM, start, '+', 'COUNT', this.options.batchSize ?? 256));
    if (entries.length === 0) return 0;
    await this.settlement.handle(entries);
    await this.redis.set(billingKeys.usagePollerCursor, entries[entries.length - 1].id);
    return entries.length;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      let read = 0;
      try {
        read = await this.pollOnce();
      } catch (error) {
        this.log.warn('usage poller could not read or settle; retrying', { error });
      }
      if (read === 0 && !this.stopping) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, this.options.intervalMs ?? 50).unref();
        });
      }
    }
  }
}
