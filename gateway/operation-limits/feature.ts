import { DocumentMemo } from '../../lib/document-memo';
import type { GatewayFeature } from '../pipeline/feature';
import { checkShape, checkSource, checkSourceExpansion, measureOperation, type OperationLimits, type OperationShape } from './limits';

/**
 * Operation limits on every operation: the document's size, tokens and
 * expanded fields on its text, before anything parses it; its depth, aliases
 * and root fields once it is resolved (measured once per document and
 * operation name).
 */
export function operationLimits(limits: OperationLimits): GatewayFeature {
  const shapes = new DocumentMemo<OperationShape>();
  return {
    name: 'operation limits',
    requestDidStart(request) {
      return typeof request.query === 'string' ? (checkSource(request.query, limits) ?? checkSourceExpansion(request.query, limits)) : undefined;
    },
    operationDidResolve({ document, operationName }) {
      const errors = checkShape(
        shapes.get(undefined, document, operationName ?? '', () => measureOperation(document, operationName)),
        limits,
      );
      return errors.length ? errors : undefined;
    },
  };
}
