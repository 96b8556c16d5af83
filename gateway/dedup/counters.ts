/**
 * How much deduplication saved, for the metrics endpoint to expose: each
 * count is a subgraph fetch or an inbound operation that was NOT executed
 * because an identical one in flight answered it.
 */
export interface DedupCounters {
  /** Subgraph fetches answered by an identical fetch in flight. */
  deduplicatedFetches: number;
  /** Inbound operations answered by an identical operation in flight. */
  deduplicatedOperations: number;
}

/** The process's counters (monotonic; one gateway process counts its own). */
export const dedupCounters: DedupCounters = { deduplicatedFetches: 0, deduplicatedOperations: 0 };
