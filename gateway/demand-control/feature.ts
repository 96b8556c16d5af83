import { DocumentMemo } from '../../lib/document-memo';
import { type GatewayMetrics, gatewayMetrics } from '../metrics/gateway-metrics';
import type { GatewayFeature } from '../pipeline/feature';
import { StateKey } from '../pipeline/operation-state';
import { variablesWithDefaults } from '../pipeline/operation-variables';
import { checkCost, costPolicy, estimateCost, type CostDirectives, type DemandControlOptions } from './cost';

const ESTIMATE = new StateKey<number>('demand control: estimate');

/**
 * Estimates every operation once it is resolved, before anything is planned,
 * and records the estimate; refuses it when over budget only if the policy
 * enforces (a budget configured, or costs declared by the graph). With
 * `extension`, the estimate (and the budget when enforced) is added to the
 * response as `extensions.cost`, the shape Hive Gateway uses.
 */
export function demandControl(directives: CostDirectives, options: DemandControlOptions, metrics: GatewayMetrics = gatewayMetrics): GatewayFeature {
  const policy = costPolicy(directives, options);
  const costs = new DocumentMemo<number>();
  return {
    name: 'demand control',
    operationDidResolve(state) {
      const { schema, document, operationName, variables } = state;
      const estimate = () => estimateCost(schema, directives, document, operationName, variablesWithDefaults(document, operationName, variables), options.defaultListSize);
      const key = memoKey(variables);
      const estimated = key === undefined ? estimate() : costs.get(schema, document, `${operationName ?? ''}\n${key}`, estimate);
      state.set(ESTIMATE, estimated);
      // The error only when it is sent: measuring, an operation over budget is counted, and building a GraphQLError (its stack) for each cost 5 % of a busy gateway's CPU.
      const over = estimated > policy.maxCost;
      metrics.recordOperationCost(policy.mode, over ? 'over' : 'ok', estimated);
      const error = over && policy.mode === 'enforce' ? checkCost(estimated, policy) : undefined;
      return error ? [error] : undefined;
    },
    ...(options.extension && {
      responseWillSend(state, { response }) {
        const estimated = state.get(ESTIMATE);
        if (estimated === undefined || response.body.kind !== 'single') return;
        const result = response.body.singleResult;
        result.extensions = { ...result.extensions, cost: policy.mode === 'enforce' ? { estimated, max: policy.maxCost } : { estimated } };
      },
    }),
  };
}

/** Longest string variable a remembered estimate is keyed by. */
const MEMO_STRING_CHARS = 128;

/**
 * Variables can size lists, so an estimate is remembered per variables: only
 * for scalars and short strings, so that uploads and other large values are
 * neither serialized nor kept (their operations are estimated afresh).
 */
function memoKey(variables: Record<string, unknown> | undefined): string | undefined {
  if (!variables) return '';
  for (const value of Object.values(variables)) {
    if (value !== null && typeof value === 'object') return undefined;
    if (typeof value === 'string' && value.length > MEMO_STRING_CHARS) return undefined;
  }
  return JSON.stringify(variables);
}
