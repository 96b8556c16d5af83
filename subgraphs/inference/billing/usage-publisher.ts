/**
 * Puts usage events on billing's stream without holding up the request and
 * without losing one to a passing Redis error: each event is published in the
 * background and retried with exponential backoff. Retrying is safe because
 * billing settles by `eventId` (a retry after an XADD whose reply was lost
 * adds a copy that is charged once). Retries are bounded; an event that still
 * cannot be published is logged as an error with the whole event, and its
 * reservation is released by billing's sweeper when it expires — the user is
 * then not charged for that request, never charged twice.
 */
import type Redis from 'ioredis';
import type { Logger } from '../../../lib/log';
import { publishUsageEvent, validateUsageEvent, type UsageEvent } from '../../../lib/usage-events';

export interface UsagePublisherOptions {
  log: Logger;
  /** Publishing attempts per event. @default 10 */
  attempts?: number;
  /** Delay before the first retry; doubles per retry up to `maxBackoffMs`. @default 100 ms */
  backoffMs?: number;
  /** @default 5000 ms */
  maxBackoffMs?: number;
}

export class UsagePublisher {
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly redis: Redis,
    private readonly options: UsagePublisherOptions,
  ) {}

  /** Events still being published (retries included). */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Starts publishing `event` and returns at once. Throws a UsageEventError
   * when the event is invalid: that is a bug of the caller, which no retry fixes.
   */
  publish(event: UsageEvent): void {
    this.publishWorkedOut(event, async () => event);
  }

  /**
   * As `publish`, for an event whose numbers `workOut` decides first (a resumed stream's run, billed its share of
   * the stream: usage-billing.ts). `event` is checked now; `workOut` runs again on each retry, so it must be
   * idempotent, and what it returns must be valid whenever `event` is.
   */
  publishWorkedOut(event: UsageEvent, workOut: () => Promise<UsageEvent>): void {
    validateUsageEvent(event);
    const delivery = this.deliver(event, workOut).finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  }

  /** Waits until every event so far is published or given up, or `timeoutMs` passed; true when none is left. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.pending), new Promise((resolve) => (timer = setTimeout(resolve, deadline - Date.now())))]);
      clearTimeout(timer);
    }
    return this.pending.size === 0;
  }

  private async deliver(event: UsageEvent, workOut: () => Promise<UsageEvent>): Promise<void> {
    const attempts = this.options.attempts ?? 10;
    let delay = this.options.backoffMs ?? 100;
    for (let attempt = 1; ; attempt++) {
      try {
        await publishUsageEvent(this.redis, await workOut());
        return;
      } catch (error) {
        if (attempt >= attempts) {
          this.options.log.error('USAGE EVENT LOST: it could not be published to billing; its reservation will expire unbilled', {
            attempts,
            error: (error as Error).message,
            event,
          });
          return;
        }
        this.options.log.warn('usage event not published yet; retrying', { eventId: event.eventId, attempt, retryInMs: delay, error: (error as Error).message });
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, this.options.maxBackoffMs ?? 5_000);
      }
    }
  }
}
