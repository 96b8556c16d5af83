/**
 * A circuit breaker for one downstream (a subgraph, a GPU endpoint). States:
 * - closed: calls go. `failureThreshold` failures in a row open it.
 * - open: calls are refused at once (no socket, no timeout to sit out) for
 *   `openMs` after the opening.
 * - half-open: once `openMs` has passed, one probe goes at a time; its outcome
 *   closes the breaker or re-opens it for another `openMs`. A probe still out
 *   after another `openMs` (a slow completion) no longer blocks the next one.
 * A downstream that is down then costs its callers nothing, and one that comes
 * back is noticed by the first call after the pause.
 *
 * Outcomes arrive two ways. A call that took a permit settles it with `record`:
 * in half-open only the probe decides, because calls that went out before the
 * opening say nothing about the downstream now. Health learned outside a
 * permitted call (a health poll answered, a shared stream broke) is reported
 * with `observe`, and is current, so it decides in any state.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** Leave to make one call; `probe` marks the trial call of half-open. */
export interface Permit {
  readonly probe: boolean;
}

export interface CircuitBreakerOptions {
  /** Failures in a row that open a closed breaker. */
  failureThreshold: number;
  /** How long the breaker stays open before a probe may go, and how long a probe may take before another may go. */
  openMs: number;
  /** @default Date.now */
  now?: () => number;
}

export class CircuitBreaker {
  private failures = 0;
  /** When the breaker last opened, or undefined while it is closed. */
  private openedAt: number | undefined;
  private probe: { permit: Permit; since: number } | undefined;
  private readonly now: () => number;

  constructor(private readonly options: CircuitBreakerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Half-open as soon as `openMs` has passed, so that callers filtering on the state see the downstream may be tried again. */
  get state(): BreakerState {
    if (this.openedAt === undefined) return 'closed';
    return this.now() - this.openedAt < this.options.openMs ? 'open' : 'half-open';
  }

  /**
   * A permit for a call that may go now, or undefined when the breaker
   * refuses it. Every permit must be settled once with `record`: in half-open
   * it is the probe, and no other call goes until its outcome is known or it
   * has taken `openMs`.
   */
  tryAcquire(): Permit | undefined {
    const state = this.state;
    if (state === 'closed') return { probe: false };
    if (state === 'open' || this.probeBlocks()) return undefined;
    const permit = { probe: true };
    this.probe = { permit, since: this.now() };
    return permit;
  }

  /**
   * The outcome of a permitted call. A success closes the breaker (the
   * downstream answered); a failure opens it after the threshold, and a failed
   * probe re-opens it at once. Other calls settling while it is not closed
   * decide nothing but a close: they went out before it opened.
   */
  record(permit: Permit, ok: boolean): void {
    if (this.probe?.permit === permit) this.probe = undefined;
    if (ok) {
      this.close();
      return;
    }
    this.failures += 1;
    if (permit.probe || (this.openedAt === undefined && this.failures >= this.options.failureThreshold)) this.open();
  }

  /** Health learned outside a permitted call: a success closes the breaker; a failure counts toward the threshold, and re-opens a breaker that is not closed. */
  observe(ok: boolean): void {
    if (ok) {
      this.close();
      return;
    }
    this.failures += 1;
    if (this.openedAt !== undefined || this.failures >= this.options.failureThreshold) this.open();
  }

  /**
   * Opens the breaker now, whatever the count: the downstream is known to be
   * stuck (it answers nothing, not even a health probe), so waiting for
   * `failureThreshold` calls to sit out their deadlines would only make more
   * callers wait.
   */
  trip(): void {
    this.failures = Math.max(this.failures, this.options.failureThreshold);
    this.open();
  }

  /** How long until a probe may go: while open, or while half-open with a probe in flight; 0 otherwise. */
  retryAfterMs(): number {
    const state = this.state;
    if (state === 'open') return this.options.openMs - (this.now() - this.openedAt!);
    if (state === 'half-open' && this.probeBlocks()) return this.options.openMs - (this.now() - this.probe!.since);
    return 0;
  }

  private probeBlocks(): boolean {
    return this.probe !== undefined && this.now() - this.probe.since < this.options.openMs;
  }

  private close(): void {
    this.failures = 0;
    this.openedAt = undefined;
  }

  private open(): void {
    this.openedAt = this.now();
    this.probe = undefined;
  }
}
