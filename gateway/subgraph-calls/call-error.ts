/** Why a subgraph could not be used: `reason` for programs, the message for people. */
export type SubgraphFailure = 'CONNECTION_FAILED' | 'TIMEOUT' | 'CIRCUIT_OPEN' | 'BAD_GATEWAY';

/**
 * A subgraph call that got no usable answer, thrown by the subgraph client
 * and turned into a SUBGRAPH_UNAVAILABLE GraphQL error by the data source.
 */
export class SubgraphCallError extends Error {
  override name = 'SubgraphCallError';

  constructor(
    readonly service: string,
    readonly reason: SubgraphFailure,
    message: string,
    /** Attempts made, retries included. */
    readonly attempts: number,
    /** While the breaker is open: when a probe may go. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}
