import { GraphQLDataSourceProcessOptions, RemoteGraphQLDataSource } from '@apollo/gateway';
import { IDENTITY_HEADER } from '../lib/identity';
import type { GatewayContext } from './context';

/**
 * Forwards the caller's signed identity (never their token) and the request id
 * on every subgraph fetch: the operation's own fetches and the entity fetches
 * made for each subscription event.
 */
export class SignedIdentityDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    if (!('identity' in context)) return; // the gateway's own health checks carry no caller
    request.http?.headers.set(IDENTITY_HEADER, context.identity.header());
    request.http?.headers.set('x-request-id', context.requestId);
  }
}
