/**
 * Work in flight by key: a second caller with the same key while the first
 * is still running gets the first one's promise instead of starting the work
 * again. Nothing is kept once the work settles — this shares only
 * simultaneous work, it is not a cache.
 */
export class InFlight<V> {
  private readonly pending = new Map<string, Promise<V>>();

  run(key: string, work: () => Promise<V>): { promise: Promise<V>; shared: boolean } {
    const running = this.pending.get(key);
    if (running) return { promise: running, shared: true };
    const promise = work().finally(() => this.pending.delete(key));
    this.pending.set(key, promise);
    return { promise, shared: false };
  }
}
