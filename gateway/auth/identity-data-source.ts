import { type GraphQLDataSourceProcessOptions, RemoteGraphQLDataSource } from '@apollo/gateway';
import type { GraphQLError } from 'graphql';
import { codedError, ErrorCode } from '../../lib/errors';
import { IDENTITY_HEADER } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import type { GatewayContext } from './context';
import { SubgraphCallError, type SubgraphFailure } from '../subgraph-calls/call-error';
import type { SubgraphClient } from '../subgraph-calls/subgraph-client';

/**
 * Forwards the caller's signed identity (never their token; signed for this
 * subgraph's audience, lib/service-calls.ts), the request id
 * and the W3C trace context on every subgraph fetch: the operation's own
 * fetches and the entity fetches made for each subscription event. Fetches go
 * through the subgraph's client (keep-alive pool, timeout, retries, circuit
 * breaker, deduplication), and a subgraph it could not use becomes a
 * SUBGRAPH_UNAVAILABLE error naming it: @apollo/gateway keeps the data of the
 * other fetches, so the caller gets a partial result instead of none. The
 * caller learns the service, the reason and the request id; the addresses and
 * the upstream's own words, which are the operator's business, go to the log
 * under that request id.
 */
export class SignedIdentityDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(
    readonly service: string,
    url: string,
    client?: SubgraphClient,
    private readonly log?: Logger,
  ) {
    super({ url });
    if (client) this.fetcher = client.fetch;
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    if (!('identity' in context)) return; // the gateway's own health checks carry no caller
    request.http?.headers.set(IDENTITY_HEADER, context.identity.header(this.service));
    request.http?.headers.set('x-request-id', context.requestId);
    if (context.traceparent) request.http?.headers.set('traceparent', context.traceparent);
    if (context.traceparent && context.tracestate) request.http?.headers.set('tracestate', context.tracestate);
  }

  /**
   * Every failure of a fetch: the subgraph client's, or Apollo's for an
   * answer that was not a GraphQL response (an error status, whose error
   * would carry the subgraph's URL and body, or a body that is not JSON).
   */
  override didEncounterError(error: Error, _request: unknown, _response: unknown, context?: GatewayContext): void {
    const failure = error instanceof SubgraphCallError ? error : new SubgraphCallError(this.service, 'BAD_GATEWAY', `subgraph "${this.service}" gave no usable answer: ${describeUpstream(error)}`, 1);
    const requestId = context && 'requestId' in context ? context.requestId : undefined;
    this.log?.warn('subgraph call failed', { service: failure.service, reason: failure.reason, attempts: failure.attempts, requestId, detail: failure.message });
    throw subgraphUnavailable(failure, requestId);
  }
}

const REASONS: Record<SubgraphFailure, string> = {
  CONNECTION_FAILED: 'it could not be reached',
  TIMEOUT: 'it did not answer in time',
  BAD_GATEWAY: 'it answered with an error instead of data',
  CIRCUIT_OPEN: 'it has been failing, so it is not called for now',
};

/**
 * The error a caller sees for a subgraph that could not be used; the fields
 * it serves are null beside it. Never the subgraph's address or its own
 * error text: those are in the log line with the same request id.
 */
export function subgraphUnavailable(error: SubgraphCallError, requestId?: string): GraphQLError {
  const retryAfter = error.retryAfterMs !== undefined ? Math.ceil(error.retryAfterMs / 1000) : undefined;
  const retry = retryAfter !== undefined ? `; retry in ${retryAfter} s` : '';
  const quote = requestId ? ` (request ${requestId})` : '';
  return codedError(ErrorCode.SubgraphUnavailable, `subgraph "${error.service}" is unavailable, ${REASONS[error.reason]} (${error.reason})${retry}: the fields it serves are null${quote}`, {
    service: error.service,
    reason: error.reason,
    attempts: error.attempts,
    ...(retryAfter !== undefined ? { retryAfter } : {}),
    ...(requestId ? { requestId } : {}),
  });
}

/** Apollo's error for a non-2xx answer keeps the status, URL and body in `extensions.response`: all of it for the log. */
function describeUpstream(error: Error): string {
  const response = (error as { extensions?: { response?: unknown } }).extensions?.response;
  return response === undefined ? error.message : `${error.message} ${JSON.stringify(response)}`;
}
