/**
 * One gateway feature (operation limits, the safelist, demand control,
 * authorization, rate limits, the response cache, metrics) as hooks named by
 * when they run. The same hooks run on every operation, whichever way it
 * came: `apollo-adapter.ts` (with `http-source.ts` before it) runs them for
 * what Apollo Server serves (HTTP, and queries and mutations over
 * WebSocket), `SubscriptionService` (gateway/subscriptions) for the
 * subscriptions the gateway runs itself (graphql-ws and multipart HTTP).
 * So each check is written once and refuses the same operation with the same
 * code on both paths. A feature implements only the hooks it needs.
 *
 * Order: the adapters run each hook in the order of the features list
 * (`startGateway`), one feature after the other; the first refusal stops the
 * stage and the later features' hooks of that stage do not run.
 */
import type { GraphQLRequestContextResponseForOperation, GraphQLRequestContextWillSendResponse, GraphQLResponse } from '@apollo/server';
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import type { GatewayContext } from '../auth/context';
import type { OperationState } from './operation-state';

/** What a request carries before it is parsed: a POST body's operation, a GET's parameters, a graphql-ws `subscribe` payload. */
export interface SourceRequest {
  query?: unknown;
  extensions?: unknown;
}

/** A refusal: the errors the client gets (`extensions.code`, and `extensions.http` where the HTTP answer needs a status or headers). */
export type Refusal = readonly GraphQLError[];

/** One event of a subscription, as sent to the client. */
export interface SubscriptionEvent {
  data?: Record<string, unknown> | null;
  errors?: readonly GraphQLFormattedError[];
}

export interface GatewayFeature {
  /** Names the feature in errors and logs. */
  readonly name: string;
  /**
   * The request's text, before anything parses it (an oversized document
   * costs a scan, not a parse). May rewrite `query` and `extensions` (the
   * safelist puts a registered document in place of its id). Synchronous:
   * it runs on every request before Apollo Server sees it.
   */
  requestDidStart?(request: SourceRequest): GraphQLError | undefined;
  /** The operation is parsed, validated and resolved: the checks on its shape, cost, caller and rate. */
  operationDidResolve?(operation: OperationState): Refusal | undefined | Promise<Refusal | undefined>;
  /** Apollo Server only: an answer without execution (authorization left nothing to run, the response cache has it), or null. */
  responseForOperation?(operation: OperationState, request: GraphQLRequestContextResponseForOperation<GatewayContext>): Promise<GraphQLResponse | null>;
  /** Apollo Server only: the response is about to be sent (headers, results to complete, what to store or record). */
  responseWillSend?(operation: OperationState, request: GraphQLRequestContextWillSendResponse<GatewayContext>): void | Promise<void>;
  /** A subscription passed every check and is planned: it is live from now on. */
  subscriptionDidStart?(operation: OperationState): void;
  /** Each event of a live subscription, before it is sent; returns the event to send (possibly the same object). */
  eventWillSend?(operation: OperationState, event: SubscriptionEvent): SubscriptionEvent;
  /**
   * A subscription ended (its upstream ended, the client left) or was refused
   * after `operationDidResolve` began: called once, for every feature, so
   * what a hook took (a stream slot) is given back.
   */
  subscriptionDidEnd?(operation: OperationState): void;
}
