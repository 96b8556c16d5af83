import type Redis from 'ioredis';
import type { Logger } from '../../lib/log';
import { decodeUsageEvent, USAGE_DEAD_LETTER_STREAM, UsageEventError, type UsageEvent } from '../../lib/usage-events';
import type { Ledger } from './ledger';

/** One stream entry as XREADGROUP / XAUTOCLAIM / XRANGE return it; `fields` is null when the entry was trimmed away while pending. */
export interface StreamEntry {
  id: string;
  fields: string[] | null;
}

export interface SettlementCounts {
  settled: number;
  duplicates: number;
  deadLettered: number;
}

/**
 * Turns usage-stream entries into settlements: decodes each, settles the
 * valid ones in one pipeline, and moves what cannot be settled (malformed, an
 * unpriced model, a reservation that does not match) to the dead-letter
 * stream with the reason, so it is neither retried forever nor lost. When
 * `handle` resolves, every entry is dealt with and may be acknowledged; when it
 * throws (Redis unreachable), none may be.
 */
export class UsageSettlement {
  constructor(
    private readonly redis: Redis,
    private readonly ledger: Ledger,
    private readonly log: Logger,
  ) {}

  async handle(entries: readonly StreamEntry[], now = Date.now()): Promise<SettlementCounts> {
    const counts: SettlementCounts = { settled: 0, duplicates: 0, deadLettered: 0 };
    const valid: { entry: StreamEntry; event: UsageEvent }[] = [];
    const dead: { entry: StreamEntry; reason: string }[] = [];
    for (const entry of entries) {
      if (!entry.fields) continue;
      try {
        valid.push({ entry, event: decodeUsageEvent(entry.fields) });
      } catch (error) {
        if (!(error instanceof UsageEventError)) throw error;
        dead.push({ entry, reason: error.message });
      }
    }
    const outcomes = await this.ledger.settleMany(
      valid.map((v) => v.event),
      now,
    );
    outcomes.forEach((outcome, i) => {
      const { entry, event } = valid[i];
      if (outcome.status === 'settled') {
        counts.settled++;
        if (outcome.shortfall > 0) {
          this.log.warn('usage charged past the balance: the shortfall is recorded, not billed', {
            eventId: event.eventId,
            userId: event.userId,
            charge: outcome.charge,
            shortfall: outcome.shortfall,
          });
        }
      } else if (outcome.status === 'duplicate') {
        counts.duplicates++;
      } else {
        dead.push({ entry, reason: `usage event ${event.eventId} cannot be settled: ${outcome.reason}` });
      }
    });
    if (dead.length > 0) {
      const pipeline = this.redis.pipeline();
      for (const { entry, reason } of dead) pipeline.xadd(USAGE_DEAD_LETTER_STREAM, '*', 'reason', reason, 'sourceId', entry.id, ...(entry.fields ?? []));
      for (const [error] of (await pipeline.exec()) ?? []) if (error) throw error;
      for (const { entry, reason } of dead) this.log.error('usage event moved to the dead-letter stream', { streamId: entry.id, reason, deadLetter: USAGE_DEAD_LETTER_STREAM });
      counts.deadLettered = dead.length;
    }
    return counts;
  }
}

/** Entries from an XRANGE / XREADGROUP / XAUTOCLAIM reply's `[id, fields][]` list. */
export function toEntries(raw: unknown): StreamEntry[] {
  return ((raw ?? []) as [string, string[] | null][]).map(([id, fields]) => ({ id, fields }));
}
