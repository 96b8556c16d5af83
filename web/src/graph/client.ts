import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, split } from '@apollo/client';
import { ErrorLink } from '@apollo/client/link/error';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient, type Client } from 'graphql-ws';
import { getSession, setSession } from '../auth/session';
import { isUnauthenticated } from './errors';

/**
 * The app's one Apollo Client: queries and mutations over HTTP, subscriptions
 * over graphql-ws, both at the gateway's /graphql on this origin, both with the
 * session's token (a header on HTTP, the connection_init payload on the
 * socket). An answer saying the token is no longer valid ends the session.
 */
const GRAPHQL_PATH = '/graphql';

function authorization(): Record<string, string> {
  const session = getSession();
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

/** Drops the session when the token it sent was refused (a request made without one was simply not allowed). */
function signOutIfRefused(error: unknown, sentToken: string | undefined): void {
  if (sentToken && sentToken === getSession()?.token && isUnauthenticated(error)) setSession(null);
}

const wsClient: Client = createClient({
  url: () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${GRAPHQL_PATH}`,
  connectionParams: authorization,
  // One socket for every live stream; closed a little after the last one ends.
  lazy: true,
  lazyCloseTimeout: 3_000,
  retryAttempts: 2,
  on: {
    closed: (event) => {
      if ((event as { code?: number }).code === 4401) setSession(null);
    },
  },
});

const authLink = new ApolloLink((operation, forward) => {
  operation.setContext(({ headers = {} }: { headers?: Record<string, string> }) => ({ headers: { ...headers, ...authorization() } }));
  return forward(operation);
});

const errorLink = new ErrorLink(({ error, operation }) => {
  const sent = (operation.getContext().headers as Record<string, string> | undefined)?.Authorization?.replace(/^Bearer /, '');
  signOutIfRefused(error, sent);
});

const isSubscription = ({ query }: { query: Parameters<typeof getMainDefinition>[0] }) => {
  const definition = getMainDefinition(query);
  return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
};

export const client = new ApolloClient({
  link: split(isSubscription, new GraphQLWsLink(wsClient), ApolloLink.from([authLink, errorLink, new HttpLink({ uri: GRAPHQL_PATH })])),
  cache: new InMemoryCache({
    typePolicies: {
      // Balances, usage buckets and prices have no id: they belong to their parent.
      Balance: { keyFields: false },
      Pricing: { keyFields: false },
      // Endpoints are listed per model; their address is unique only within one.
      ModelEndpoint: { keyFields: false },
    },
  }),
  defaultOptions: { watchQuery: { fetchPolicy: 'cache-and-network' } },
});

/**
 * After sign-in or sign-out: the socket's connection_init carried the old
 * token, so it is closed (the next subscription opens one with the new token),
 * and nothing read for the previous user stays in the cache.
 */
export async function resetForNewSession(): Promise<void> {
  wsClient.terminate();
  await client.clearStore();
}
