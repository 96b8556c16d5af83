import { CircuitBreaker } from './circuit-breaker';

describe('CircuitBreaker', () => {
  let now = 0;
  const breaker = () => new CircuitBreaker({ failureThreshold: 3, cooldownMs: 1_000, now: () => now });
  beforeEach(() => (now = 0));

  it('opens after the threshold of consecutive failures, and a success in between resets the count', () => {
    const b = breaker();
    b.failed();
    b.failed();
    b.succeeded();
    b.failed();
    b.failed();
    expect(b.state).toBe('closed');
    b.failed();
    expect(b.state).toBe('open');
    expect(b.tryAcquire()).toBe(false);
  });

  it('lets exactly one trial through after the cooldown; its success closes the circuit', () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failed();
    now = 999;
    expect(b.tryAcquire()).toBe(false);
    now = 1_000;
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire()).toBe(true);
    expect(b.tryAcquire()).toBe(false);
    b.succeeded();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire()).toBe(true);
  });

  it('re-opens for a full cooldown when the trial fails', () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.failed();
    now = 1_500;
    expect(b.tryAcquire()).toBe(true);
    b.failed();
    expect(b.state).toBe('open');
    now = 2_499;
    expect(b.tryAcquire()).toBe(false);
    now = 2_500;
    expect(b.tryAcquire()).toBe(true);
  });
});
