import { CircuitBreaker } from '../subgraph-calls/circuit-breaker';

function breaker() {
  let now = 1_000;
  const b = new CircuitBreaker({ failureThreshold: 3, openMs: 500 }, () => now);
  return { b, advance: (ms: number) => (now += ms) };
}

describe('CircuitBreaker', () => {
  it('opens after the threshold of failures in a row, and a success in between resets the count', () => {
    const { b } = breaker();
    for (const ok of [false, false, true, false, false]) b.record(b.tryAcquire()!, ok);
    expect(b.state).toBe('closed');
    b.record(b.tryAcquire()!, false);
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBeUndefined();
    expect(b.retryAfterMs()).toBe(500);
  });

  it('lets another probe go when the one in flight has taken another open period, and says how long to wait meanwhile', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire()!, false);
    advance(500);
    const slow = b.tryAcquire();
    expect(slow).toEqual({ probe: true });
    advance(200);
    expect(b.tryAcquire()).toBeUndefined();
    expect(b.retryAfterMs()).toBe(300);
    advance(300);
    const next = b.tryAcquire();
    expect(next).toEqual({ probe: true });
    b.record(next!, true);
    expect(b.state).toBe('closed');
    b.record(slow!, true);
    expect(b.state).toBe('closed');
  });

  it('lets exactly one probe through once open long enough; its success closes the breaker', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire()!, false);
    advance(499);
    expect(b.tryAcquire()).toBeUndefined();
    advance(1);
    const probe = b.tryAcquire();
    expect(probe).toEqual({ probe: true });
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBeUndefined();
    b.record(probe!, true);
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toEqual({ probe: false });
  });

  it('re-opens at once when the probe fails, for another full pause', () => {
    const { b, advance } = breaker();
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire()!, false);
    advance(500);
    b.record(b.tryAcquire()!, false);
    expect(b.state).toBe('open');
    advance(499);
    expect(b.tryAcquire()).toBeUndefined();
  });

  it('leaves the decision to the probe when a call from before the opening fails late', () => {
    const { b, advance } = breaker();
    const early = b.tryAcquire()!;
    for (let i = 0; i < 3; i++) b.record(b.tryAcquire()!, false);
    advance(500);
    const probe = b.tryAcquire()!;
    b.record(early, false);
    expect(b.state).toBe('half-open');
    b.record(probe, true);
    expect(b.state).toBe('closed');
  });
});
