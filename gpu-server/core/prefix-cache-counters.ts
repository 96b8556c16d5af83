/**
 * The counters of one model instance's prefix cache (the causal-lm
 * backend's, backends/causal-lm/prefix-cache.ts). The backend runs in the
 * instance's worker thread; the counters live in a SharedArrayBuffer the
 * repository allocates and passes in the RunnerContext, so the metrics read
 * them on the main thread at scrape time without a message to the worker.
 * One thread writes, the other reads aligned 8-byte slots: a scrape sees
 * each counter whole, if a step behind.
 */
export enum PrefixCacheCounter {
  /** Prompt tokens whose K/V came from the cache. */
  HitTokens,
  /** Prompt tokens computed (not in the cache, or the last one, always computed for its logits). */
  MissTokens,
  /** Blocks evicted to stay within the budget. */
  EvictedBlocks,
  /** Bytes of K/V held now. */
  Bytes,
}

const SLOTS = 4;

export function newPrefixCacheCounters(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(SLOTS * Float64Array.BYTES_PER_ELEMENT));
}
