import { DocumentMemo } from '../../lib/document-memo';
import type { GatewayFeature } from '../pipeline/feature';
import { variablesWithDefaults } from '../pipeline/operation-variables';
import { checkCost, estimateCost, type CostDirectives, type DemandControlOptions } from './cost';

/** Refuses over-budget operations once they are resolved, before anything is planned. */
export function demandControl(directives: CostDirectives, options: DemandControlOptions): GatewayFeature {
  const costs = new DocumentMemo<number>();
  return {
    name: 'demand control',
    operationDidResolve({ schema, document, operationName, variables }) {
      const estimate = () => estimateCost(schema, directives, document, operationName, variablesWithDefaults(document, operationName, variables), options.defaultListSize);
      const key = memoKey(variables);
      const error = checkCost(key === undefined ? estimate() : costs.get(schema, document, `${operationName ?? ''}\n${key}`, estimate), options);
      return error && [error];
    },
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
