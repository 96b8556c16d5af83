import type { GraphQLError } from 'graphql';
import type { GatewayFeature, Refusal, SourceRequest, SubscriptionEvent } from './feature';
import type { OperationState } from './operation-state';

/**
 * The features of a gateway, by hook, in the order they were listed. Both
 * adapters run their stages through this one object: the request's source
 * and the resolved operation here, Apollo Server's own stages in
 * `apollo-adapter.ts`, a live subscription's here too.
 */
export class GatewayPipeline {
  /** Each hook's features, worked out once: a request walks only the features that have the hook. */
  readonly sourceChecks: readonly GatewayFeature[];
  readonly operationChecks: readonly GatewayFeature[];
  readonly responders: readonly GatewayFeature[];
  readonly responseFinishers: readonly GatewayFeature[];
  private readonly subscriptionStarters: readonly GatewayFeature[];
  private readonly eventFinishers: readonly GatewayFeature[];
  private readonly subscriptionEnders: readonly GatewayFeature[];

  constructor(readonly features: readonly GatewayFeature[]) {
    const names = new Set<string>();
    for (const feature of features) {
      if (names.has(feature.name)) throw new Error(`the gateway's features list has "${feature.name}" twice: expected each feature once`);
      names.add(feature.name);
    }
    this.sourceChecks = features.filter((f) => f.requestDidStart);
    this.operationChecks = features.filter((f) => f.operationDidResolve);
    this.responders = features.filter((f) => f.responseForOperation);
    this.responseFinishers = features.filter((f) => f.responseWillSend);
    this.subscriptionStarters = features.filter((f) => f.subscriptionDidStart);
    this.eventFinishers = features.filter((f) => f.eventWillSend);
    this.subscriptionEnders = features.filter((f) => f.subscriptionDidEnd);
  }

  /** The first refusal of the request's source, if any; the source may have been rewritten. */
  requestDidStart(request: SourceRequest): GraphQLError | undefined {
    for (const feature of this.sourceChecks) {
      const refused = feature.requestDidStart!(request);
      if (refused) return refused;
    }
    return undefined;
  }

  /** The first refusal of the resolved operation, if any; the checks after a refusal do not run. */
  async operationDidResolve(operation: OperationState): Promise<Refusal | undefined> {
    for (const feature of this.operationChecks) {
      const result = feature.operationDidResolve!(operation);
      // Most checks are synchronous (memoized): only a promise is waited for.
      const refused = result instanceof Promise ? await result : result;
      if (refused?.length) return refused;
    }
    return undefined;
  }

  subscriptionDidStart(operation: OperationState): void {
    for (const feature of this.subscriptionStarters) feature.subscriptionDidStart!(operation);
  }

  eventWillSend<E extends SubscriptionEvent>(operation: OperationState, event: E): E {
    let sent: SubscriptionEvent = event;
    for (const feature of this.eventFinishers) sent = feature.eventWillSend!(operation, sent);
    return sent as E;
  }

  subscriptionDidEnd(operation: OperationState): void {
    for (const feature of this.subscriptionEnders) feature.subscriptionDidEnd!(operation);
  }
}
