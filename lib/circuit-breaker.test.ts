import { CircuitBreaker } from './circuit-breaker';

function breaker() {
  let now = 1_000;
  const b = new CircuitBreaker({ failureThreshold: 3, openMs: 500, now: () => now });
  return { b, advance: (ms: number) => (now += ms) };
}

function openBreaker() {
  const opened = breaker();
  for (let i = 0; i < 3; i++) opened.b.record(opened.b.tryAcquire()!, false);
  return opened;
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

  it('counts observed failures toward the threshold like permitted ones, and an observed success resets the count', () => {
    const { b } = breaker();
    b.observe(false);
    b.record(b.tryAcquire()!, false);
    b.observe(true);
    b.observe(false);
    b.observe(false);
    expect(b.state).toBe('closed');
    b.observe(false);
    expect(b.state).toBe('open');
  });

  it('lets exactly one probe through once open long enough, and reads half-open before anyone asks; its success closes the breaker', () => {
    const { b, advance } = openBreaker();
    advance(499);
    expect(b.tryAcquire()).toBeUndefined();
    advance(1);
    expect(b.state).toBe('half-open');
    const probe = b.tryAcquire();
    expect(probe).toEqual({ probe: true });
    expect(b.tryAcquire()).toBeUndefined();
    b.record(probe!, true);
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toEqual({ probe: false });
  });

  it('lets another probe go when the one in flight has taken another open period, and says how long to wait meanwhile', () => {
    const { b, advance } = openBreaker();
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
    expect(b.retryAfterMs()).toBe(0);
  });

  it('keeps the newer probe in flight when an overdue one settles first', () => {
    const { b, advance } = openBreaker();
    advance(500);
    const slow = b.tryAcquire()!;
    advance(500);
    const next = b.tryAcquire()!;
    b.record(slow, false);
    expect(b.state).toBe('open');
    advance(500);
    expect(b.tryAcquire()).toEqual({ probe: true });
    b.record(next, true);
    expect(b.state).toBe('closed');
  });

  it('re-opens at once when the probe fails, for another full pause', () => {
    const { b, advance } = openBreaker();
    advance(500);
    b.record(b.tryAcquire()!, false);
    expect(b.state).toBe('open');
    advance(499);
    expect(b.tryAcquire()).toBeUndefined();
    expect(b.retryAfterMs()).toBe(1);
    advance(1);
    expect(b.tryAcquire()).toEqual({ probe: true });
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

  it('re-opens for a full pause on a failure observed while half-open, and lets a probe go right after it', () => {
    const { b, advance } = openBreaker();
    advance(700);
    expect(b.tryAcquire()).toEqual({ probe: true });
    b.observe(false);
    expect(b.state).toBe('open');
    advance(499);
    expect(b.tryAcquire()).toBeUndefined();
    advance(1);
    expect(b.tryAcquire()).toEqual({ probe: true });
  });

  it('trips open at once when the downstream is known to be stuck, and lets a probe through after the pause', () => {
    const { b, advance } = breaker();
    b.record(b.tryAcquire()!, true);
    b.trip();
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBeUndefined();
    advance(500);
    expect(b.tryAcquire()).toMatchObject({ probe: true });
  });

  it('closes an open breaker on an observed success (a health poll answered) without waiting for the pause', () => {
    const { b } = openBreaker();
    b.observe(true);
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toEqual({ probe: false });
  });
});
