import type { GraphQLResponse } from '@apollo/server';
import type { Logger } from '../../lib/log';
import type { GatewayFeature } from '../pipeline/feature';
import { StateKey } from '../pipeline/operation-state';
import { type GatewayMetrics, type OperationType, UNRESOLVED_OPERATION } from './gateway-metrics';
import { requestFields, requestLog } from './request-log';

/** Outcomes that mean the gateway or a service behind it failed, not the caller: logged as warnings. */
const SERVER_SIDE = /INTERNAL_SERVER_ERROR|UNAVAILABLE/;

/** Set once a subscription is counted live, so that only those are counted out. */
const LIVE = new StateKey<true>('metrics: live');

/**
 * Times every operation Apollo Server handles (HTTP, and WebSocket queries
 * and mutations) from the start of the request to its response, and records
 * it by operation name, type and outcome, with the persisted-query (APQ)
 * look-ups among them. Each one also gets a log line with its request id and
 * trace id: debug when it went well or the caller was refused, a warning when
 * the gateway or a subgraph failed it. Counts live subscriptions.
 *
 * Last in the features list: the outcome recorded must include the errors
 * the others add (the clock still starts with the request).
 */
export function operationMetrics(metrics: GatewayMetrics, log: Logger): GatewayFeature {
  return {
    name: 'metrics',
    responseWillSend(state, { operation, operationName, response, contextValue, metrics: request }) {
      const seconds = (performance.now() - state.startedAt) / 1000;
      const name = operation ? metrics.operationLabel(operationName) : UNRESOLVED_OPERATION;
      const type: OperationType = operation?.operation ?? 'unknown';
      const error = firstError(response.body);
      const outcome = error ? String(error.extensions?.code ?? 'INTERNAL_SERVER_ERROR') : 'ok';
      metrics.recordOperation(name, type, outcome, seconds);
      // An APQ look-up is a request with a hash and no document: found, or PERSISTED_QUERY_NOT_FOUND.
      if (request.persistedQueryHit) metrics.recordCacheLookup('apq', 'hit');
      else if (outcome === 'PERSISTED_QUERY_NOT_FOUND') metrics.recordCacheLookup('apq', 'miss');
      // The log has room for every name; the metric label may have been folded into (other).
      const fields = { operation: operationName ?? null, type, outcome, ms: Math.round(seconds * 1e4) / 10 };
      if (SERVER_SIDE.test(outcome)) requestLog(log, contextValue).warn('operation failed', { ...fields, error: error?.message });
      else log.debug('operation', { ...requestFields(contextValue), ...fields });
    },
    subscriptionDidStart(state) {
      state.set(LIVE, true);
      metrics.subscriptionStarted();
    },
    subscriptionDidEnd(state) {
      if (state.get(LIVE)) metrics.subscriptionEnded();
    },
  };
}

function firstError(body: GraphQLResponse['body']): { message: string; extensions?: Record<string, unknown> } | undefined {
  const errors = body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors;
  return errors?.[0];
}
