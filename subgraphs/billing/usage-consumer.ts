import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import type { Logger } from '../../lib/log';
import { USAGE_EVENTS_STREAM } from '../../lib/usage-events';
import { toEntries, type SettlementCounts, type StreamEntry, type UsageSettlement } from './settlement';

/** What reads the usage stream and settles it; the group consumer on Redis, the poller in in-memory mode. */
export interface UsageEventSource {
  start(): Promise<void>;
  /** Stops reading; resolves once the batch in hand is settled and acknowledged. */
  stop(): Promise<void>;
}

export const USAGE_CONSUMER_GROUP = 'billing';

export interface UsageConsumerOptions {
  /** Unique per process: a dead process's pending entries are told apart and reclaimed by name. */
  consumerName?: string;
  /** Entries read (and settled in one pipeline) at a time. @default 256 */
  batchSize?: number;
  /** How long one XREADGROUP waits for new entries. @default 2000 ms */
  blockMs?: number;
  /** Entries pending longer than this belong to a dead consumer and are reclaimed (XAUTOCLAIM). */
  claimIdleMs: number;
  /** Acknowledged entries older than this are trimmed from the stream; pending and unread ones never are. */
  streamRetentionMs: number;
  /** Wait after a Redis error before reading again. @default 1000 ms */
  retryDelayMs?: number;
}

/** A consumer that has had no pending entries for this long is removed from the group. */
const FORGET_CONSUMER_AFTER_MS = 86_400_000;

/**
 * Billing's reader of `billing:usage-events`: consumer group `billing`, one
 * consumer per process, so several replicas share the stream and each event
 * is delivered to one of them. It reads with XREADGROUP BLOCK on a connection
 * of its own (a blocked connection cannot serve anything else), settles the
 * batch, then XACKs it: at least once, and settlement is idempotent by event
 * id, so exactly one charge. A timer reclaims what dead consumers left
 * pending (XAUTOCLAIM), trims acknowledged history and forgets long-idle
 * consumers.
 */
export class UsageStreamConsumer implements UsageEventSource {
  readonly name: string;
  private readonly blocking: Redis;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private maintenance: Promise<void> | undefined;
  private readonly batchSize: number;

  constructor(
    private readonly redis: Redis,
    private readonly settlement: UsageSettlement,
    private readonly log: Logger,
    private readonly options: UsageConsumerOptions,
  ) {
    this.name = options.consumerName ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.batchSize = options.batchSize ?? 256;
    this.blocking = redis.duplicate();
    this.blocking.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await ensureGroup(this.redis);
    this.loop = this.readLoop();
    const every = Math.min(30_000, Math.max(100, Math.floor(this.options.claimIdleMs / 2)));
    this.timer = setInterval(() => {
      this.maintenance ??= this.maintain().finally(() => (this.maintenance = undefined));
    }, every);
    this.timer.unref();
    this.log.info('usage consumer started', { stream: USAGE_EVENTS_STREAM, group: USAGE_CONSUMER_GROUP, consumer: this.name });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    // Ends a pending XREADGROUP at once; what it had been handed stays pending and is reclaimed.
    this.blocking.disconnect();
    await this.loop;
    await this.maintenance;
  }

  /** One pass of XAUTOCLAIM over the whole stream; returns how many reclaimed entries it settled. */
  async claimAbandoned(): Promise<number> {
    let cursor = '0-0';
    let claimed = 0;
    do {
      const [next, raw] = (await this.redis.xautoclaim(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP, this.name, this.options.claimIdleMs, cursor, 'COUNT', this.batchSize)) as [string, unknown];
      const entries = toEntries(raw);
      if (entries.length > 0) {
        const counts = await this.settleAndAck(entries);
        claimed += counts.settled;
        this.log.info('reclaimed usage events left pending by another consumer', { entries: entries.length, ...counts });
      }
      cursor = next;
    } while (cursor !== '0-0' && !this.stopping);
    return claimed;
  }

  /**
   * Trims entries that are both older than the retention and acknowledged:
   * the cut never passes the oldest pending entry nor the group's last
   * delivered one, so nothing unsettled is lost.
   */
  async trim(now = Date.now()): Promise<void> {
    const groups = (await this.redis.xinfo('GROUPS', USAGE_EVENTS_STREAM)) as unknown[][];
    const group = groups.map(fieldMap).find((g) => g.name === USAGE_CONSUMER_GROUP);
    if (!group) return;
    const pending = (await this.redis.xpending(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP)) as [number, string | null];
    let cut = `${Math.max(0, now - this.options.streamRetentionMs)}-0`;
    for (const id of [String(group['last-delivered-id']), pending[1]]) if (id && compareIds(id, cut) < 0) cut = id;
    await this.redis.xtrim(USAGE_EVENTS_STREAM, 'MINID', '~', cut);
  }

  private async readLoop(): Promise<void> {
    // First this consumer's own pending entries (id 0), then new ones (>).
    let backlog = true;
    while (!this.stopping) {
      try {
        const reply = (await this.blocking.xreadgroup(
          'GROUP',
          USAGE_CONSUMER_GROUP,
          this.name,
          'COUNT',
          this.batchSize,
          'BLOCK',
          this.options.blockMs ?? 2_000,
          'STREAMS',
          USAGE_EVENTS_STREAM,
          backlog ? '0' : '>',
        )) as [string, unknown][] | null;
        const entries = toEntries(reply?.[0]?.[1]);
        if (backlog && entries.length === 0) backlog = false;
        if (entries.length > 0) await this.settleAndAck(entries);
      } catch (error) {
        if (this.stopping) break;
        this.log.warn('usage consumer could not read or settle; retrying', { error });
        backlog = true;
        await new Promise((resolve) => setTimeout(resolve, this.options.retryDelayMs ?? 1_000));
      }
    }
  }

  private async settleAndAck(entries: StreamEntry[]): Promise<SettlementCounts> {
    const counts = await this.settlement.handle(entries);
    await this.redis.xack(USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP, ...entries.map((e) => e.id));
    return counts;
  }

  private async maintain(): Promise<void> {
    try {
      await this.claimAbandoned();
      await this.trim();
      await this.forgetIdleConsumers();
    } catch (error) {
      if (!this.stopping) this.log.warn('usage stream maintenance failed; will retry', { error });
    }
  }

  private async forgetIdleConsumers(): Promise<void> {
    const consumers = ((await this.redis.xinfo('CONSUMERS', USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP)) as unknown[][]).map(fieldMap);
    for (const consumer of consumers) {
      if (consumer.name !== this.name && Number(consumer.pending) === 0 && Number(consumer.idle) > FORGET_CONSUMER_AFTER_MS) {
        await this.redis.xgroup('DELCONSUMER', USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP, String(consumer.name));
      }
    }
  }
}

/** Creates the group (and the stream) from the stream's start, so events published before billing first ran are settled too. */
export async function ensureGroup(redis: Redis): Promise<void> {
  try {
    await redis.xgroup('CREATE', USAGE_EVENTS_STREAM, USAGE_CONSUMER_GROUP, '0', 'MKSTREAM');
  } catch (error) {
    if (!String((error as Error).message).startsWith('BUSYGROUP')) throw error;
  }
}

function fieldMap(flat: unknown[]): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) map[String(flat[i])] = flat[i + 1];
  return map;
}

/** Orders two stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  if ((as ?? 0n) !== (bs ?? 0n)) return (as ?? 0n) < (bs ?? 0n) ? -1 : 1;
  return 0;
}
