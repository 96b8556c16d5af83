/**
 * Usage events survive a passing Redis error (retried in the background with
 * backoff), are given up loudly after the bounded attempts, and an invalid
 * event is refused at once by the producer.
 */
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { createLogger, type Logger } from '../../../lib/log';
import { connectRedis } from '../../../lib/redis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM, UsageEventError, type UsageEvent } from '../../../lib/usage-events';
import { UsagePublisher } from './usage-publisher';

let redis: Redis;

beforeEach(() => {
  redis = connectRedis('memory://', createLogger({ service: 'usage-publisher-test' }));
});

afterEach(() => {
  jest.restoreAllMocks();
  redis.disconnect();
});

function event(extra: Partial<UsageEvent> = {}): UsageEvent {
  return {
    eventId: randomUUID(),
    reservationId: randomUUID(),
    userId: `user-${randomUUID()}`,
    keyId: null,
    model: 'sluice-chat',
    modelVersion: '1',
    promptTokens: 12,
    promptCacheHitTokens: 4,
    promptCacheMissTokens: 8,
    completionTokens: 5,
    finishReason: 'STOP',
    endedAt: Date.now(),
    ...extra,
  };
}

function recordingLog(): Logger & { lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }> } {
  const lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  const log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log, lines } as unknown as Logger & { lines: typeof lines };
  return log;
}

async function published(userId: string): Promise<UsageEvent[]> {
  const entries = await redis.xrange(USAGE_EVENTS_STREAM, '-', '+');
  return entries.map(([, fields]) => decodeUsageEvent(fields)).filter((e) => e.userId === userId);
}

it('publishes an event once it is given, without the caller waiting', async () => {
  const publisher = new UsagePublisher(redis, { log: recordingLog() });
  const sent = event();
  publisher.publish(sent);
  expect(publisher.inFlight).toBe(1);
  expect(await publisher.drain(5_000)).toBe(true);
  expect(await published(sent.userId)).toEqual([sent]);
});

it('retries with backoff through transient Redis errors and publishes the event once', async () => {
  const log = recordingLog();
  const publisher = new UsagePublisher(redis, { log, backoffMs: 1 });
  const xadd = jest.spyOn(redis, 'xadd');
  xadd.mockRejectedValueOnce(new Error('connect ECONNREFUSED')).mockRejectedValueOnce(new Error('LOADING Redis is loading the dataset in memory'));
  const sent = event();
  publisher.publish(sent);
  expect(await publisher.drain(5_000)).toBe(true);
  expect(xadd).toHaveBeenCalledTimes(3);
  expect(await published(sent.userId)).toEqual([sent]);
  expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.fields?.attempt)).toEqual([1, 2]);
});

it('gives up after the bounded attempts and logs the whole event as an error', async () => {
  const log = recordingLog();
  const publisher = new UsagePublisher(redis, { log, attempts: 4, backoffMs: 1 });
  const xadd = jest.spyOn(redis, 'xadd').mockRejectedValue(new Error('connect ECONNREFUSED'));
  const sent = event();
  publisher.publish(sent);
  expect(await publisher.drain(5_000)).toBe(true);
  expect(xadd).toHaveBeenCalledTimes(4);
  const errors = log.lines.filter((l) => l.level === 'error');
  expect(errors).toHaveLength(1);
  expect(errors[0].message).toMatch(/USAGE EVENT LOST/);
  expect(errors[0].fields).toMatchObject({ attempts: 4, event: sent });
});

it('refuses an invalid event at once, naming what is wrong', () => {
  const publisher = new UsagePublisher(redis, { log: recordingLog() });
  expect(() => publisher.publish(event({ promptTokens: 13 }))).toThrow(UsageEventError);
  expect(() => publisher.publish(event({ promptTokens: 13 }))).toThrow(/promptTokens expects promptCacheHitTokens \+ promptCacheMissTokens = 12, but got 13/);
  expect(publisher.inFlight).toBe(0);
});

it('drain stops waiting at its timeout while an event is still being published, and reports it', async () => {
  const publisher = new UsagePublisher(redis, { log: recordingLog() });
  let answer: (id: string) => void = () => undefined;
  jest.spyOn(redis, 'xadd').mockImplementation((() => new Promise<string>((resolve) => (answer = resolve))) as never);
  publisher.publish(event());
  expect(await publisher.drain(20)).toBe(false);
  expect(publisher.inFlight).toBe(1);
  answer('1-0');
  expect(await publisher.drain(5_000)).toBe(true);
});

it('works an event out again on each attempt until it can be published, and drain waits for it', async () => {
  const publisher = new UsagePublisher(redis, { log: recordingLog(), backoffMs: 1 });
  const whole = event();
  let attempts = 0;
  publisher.publishWorkedOut(whole, async () => {
    attempts += 1;
    if (attempts < 3) throw new Error('Connection is closed.');
    return { ...whole, promptTokens: 0, promptCacheHitTokens: 0, promptCacheMissTokens: 0, completionTokens: 2 };
  });
  expect(await publisher.drain(5_000)).toBe(true);
  expect(attempts).toBe(3);
  expect((await published(whole.userId)).map((e) => [e.eventId, e.promptTokens, e.completionTokens])).toEqual([[whole.eventId, 0, 2]]);
});
