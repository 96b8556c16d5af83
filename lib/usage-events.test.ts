import { decodeUsageEvent, encodeUsageEvent, type UsageEvent } from './usage-events';

const event: UsageEvent = {
  eventId: '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
  reservationId: null,
  userId: 'u-1',
  keyId: 'k-1',
  model: 'sluice-chat',
  modelVersion: '1',
  promptTokens: 30,
  promptCacheHitTokens: 10,
  promptCacheMissTokens: 20,
  completionTokens: 0,
  finishReason: 'CANCELLED',
  endedAt: 1_790_000_000_000,
};

describe('usage events', () => {
  it('round-trips through stream fields, null as an empty field', () => {
    const fields = encodeUsageEvent(event);
    expect(fields.slice(0, 6)).toEqual(['v', '1', 'eventId', event.eventId, 'reservationId', '']);
    expect(decodeUsageEvent(fields)).toEqual(event);
  });

  it('refuses what a producer must not send, naming the field, the expectation and the value', () => {
    expect(() => encodeUsageEvent({ ...event, promptTokens: 31 })).toThrow('usage event promptTokens expects promptCacheHitTokens + promptCacheMissTokens = 30, but got 31');
    expect(() => encodeUsageEvent({ ...event, completionTokens: 10_000_001 })).toThrow('usage event completionTokens expects an integer from 0 to 10000000, but got 10000001');
    expect(() => encodeUsageEvent({ ...event, finishReason: 'DONE' as 'STOP' })).toThrow('usage event finishReason expects one of STOP, LENGTH, CANCELLED, ERROR, but got "DONE"');
    expect(() => encodeUsageEvent({ ...event, model: 'a|b' })).toThrow('usage event model expects a model id');
  });

  it('refuses malformed stream fields', () => {
    const fields = encodeUsageEvent(event);
    fields[fields.indexOf('endedAt') + 1] = '1.5';
    expect(() => decodeUsageEvent(fields)).toThrow('usage event endedAt expects a non-negative integer in decimal, but got "1.5"');
    expect(() => decodeUsageEvent(['v', '2'])).toThrow('usage event v expects "1", but got "2"');
  });
});
