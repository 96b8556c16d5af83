import { GraphQLDataSourceProcessOptions, RemoteGraphQLDataSource } from '@apollo/gateway';
import type { GraphQLError } from 'graphql';
import { codedError, ErrorCode } from '../../lib/errors';
import { IDENTITY_HEADER } from '../../lib/identity';
import type { GatewayContext } from './context';
import { SubgraphCallError } from '../subgraph-calls/call-error';
import type { SubgraphClient } from '../subgraph-calls/subgraph-client';

/**
 * Forwards the caller's signed identity (never their token; signed for this
 * subgraph's audience, lib/service-calls.ts), the request id
 * and the W3C trace context on every subgraph fetch: the operation's own
 * fetches and the entity fetches made for each subscription event. Fetches go
 * through the subgraph's client (keep-alive pool, timeout, retries, circuit
 * breaker, deduplication), and a subgraph it could not reach becomes a
 * SUBGRAPH_UNAVAILABLE error naming it: @apollo/gateway keeps the data of the
 * other fetches, so the caller gets a partial result instead of none.
 */
export class SignedIdentityDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  constructor(
    readonly service: string,
    url: string,
    client?: SubgraphClient,
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

  override didEncounterError(error: Error): void {
    throw error instanceof SubgraphCallError ? subgraphUnavailable(error) : error;
  }
}

/** The error a caller sees for a subgraph that could not be used; the fields it serves are null beside it. */
export function subgraphUnavailable(error: SubgraphCallError): GraphQLError {
  return codedError(ErrorCode.SubgraphUnavailable, error.message, {
    service: error.service,
    reason: error.reason,
    attempts: error.attempts,
    ...(error.retryAfterMs !== undefined ? { retryAfter: Math.ceil(error.retryAfterMs / 1000) } : {}),
  });
}
