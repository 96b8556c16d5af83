/**
 * Time as the scheduler sees it: a monotonic clock and one-shot timers. The
 * real clock is process.hrtime and Node's timers; tests pass a manual clock
 * (testing/manual-clock.ts) to step time and see exactly when batches form.
 */
export interface Clock {
  /** Monotonic time in nanoseconds. */
  now(): bigint;
  /**
   * Calls `callback` once after `delayNs`; 0 means after the current turn of
   * the event loop (setImmediate), so requests that arrive together meet.
   * Returns a function that cancels the call if it has not happened.
   */
  setTimer(callback: () => void, delayNs: number): () => void;
}

export const realClock: Clock = {
  now: () => process.hrtime.bigint(),
  setTimer(callback, delayNs) {
    if (delayNs <= 0) {
      const immediate = setImmediate(callback);
      return () => clearImmediate(immediate);
    }
    const timeout = setTimeout(callback, delayNs / 1e6);
    return () => clearTimeout(timeout);
  },
};
