/**
 * A circuit breaker for one subgraph: after `failureThreshold` failures in a
 * row it opens and refuses calls at once (no socket, no timeout to sit out)
 * for `openMs`; then it lets one probe through at a time (half-open; a
 * probe still out after another `openMs` no longer blocks the next). The
 * probe's outcome closes it again or re-opens it for another `openMs`. A
 * subgraph that is down then costs its callers nothing, and one that comes
 * back is noticed by the first request after the pause.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Leave to make one call; `probe` marks the single trial call of half-open. */
export interface Permit {
  readonly probe: boolean;
}

export interface CircuitBreakerOptions {
  failureThreshold: number;
  openMs: number;
}

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private current: BreakerState = 'closed';
  /** When the probe in flight went out, or 0 while none is. */
  private probeSince = 0;

  constructor(
    private readonly options: CircuitBreakerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    return this.current;
  }

  /**
   * A permit for a call that may go now, or undefined when the breaker
   * refuses it. Every permit must be settled once with `record`: in
   * half-open it is the probe, and no other call goes until its outcome is
   * known.
   */
  tryAcquire(): Permit | undefined {
    if (this.current === 'closed') return { probe: false };
    if (this.current === 'open') {
      if (this.now() - this.openedAt < this.options.openMs) return undefined;
      this.current = 'half-open';
    }
    // One probe at a time — but one that is taking long (a slow completion) must not keep the subgraph shut:
    // after another `openMs`, another probe may go.
    if (this.probeSince && this.now() - this.probeSince < this.options.openMs) return undefined;
    this.probeSince = this.now();
    return { probe: true };
  }

  /**
   * The outcome of a permitted call. A success closes the breaker (the
   * subgraph answered); a failure opens it after the threshold, and a failed
   * probe re-opens it at once. Calls that were already in flight when it
   * opened settle without deciding anything in half-open: only the probe does.
   */
  record(permit: Permit, ok: boolean): void {
    if (permit.probe) this.probeSince = 0;
    if (ok) {
      this.failures = 0;
      this.current = 'closed';
      return;
    }
    this.failures += 1;
    if (permit.probe || (this.current === 'closed' && this.failures >= this.options.failureThreshold)) {
      this.current = 'open';
      this.openedAt = this.now();
    }
  }

  /** How long until a probe may go: while open, or while half-open with a probe in flight; 0 otherwise. */
  retryAfterMs(): number {
    if (this.current === 'open') return Math.max(0, this.options.openMs - (this.now() - this.openedAt));
    if (this.current === 'half-open' && this.probeSince) return Math.max(0, this.options.openMs - (this.now() - this.probeSince));
    return 0;
  }
}
