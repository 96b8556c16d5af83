/**
 * A clock that moves only when told (for tests of time-dependent scheduling).
 * `advance(ns)` fires, in time order, every timer due by then; a 0-delay timer
 * is due at the current time and fires on the next `advance`, even `advance(0)`.
 */
import type { Clock } from '../core/clock';

interface Timer {
  at: bigint;
  seq: number;
  callback: () => void;
}

export class ManualClock implements Clock {
  private time = 0n;
  private seq = 0;
  private timers: Timer[] = [];

  now(): bigint {
    return this.time;
  }

  setTimer(callback: () => void, delayNs: number): () => void {
    const timer: Timer = { at: this.time + BigInt(Math.max(0, Math.round(delayNs))), seq: this.seq++, callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time forward by `ns` (microseconds × 1000), firing due timers in order. */
  advance(ns: number): void {
    const target = this.time + BigInt(ns);
    for (;;) {
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => (a.at === b.at ? a.seq - b.seq : a.at < b.at ? -1 : 1))[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      if (due.at > this.time) this.time = due.at;
      due.callback();
    }
    this.time = target;
  }

  /** Timers not yet fired. */
  get pendingTimers(): number {
    return this.timers.length;
  }
}
