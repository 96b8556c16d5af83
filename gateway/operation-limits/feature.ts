import { DocumentMemo } from '../../lib/document-memo';
import type { GatewayFeature } from '../pipeline/feature';
import { remember } from '../../lib/bounded-map';
import { checkShape, checkSource, checkSourceExpansion, MAX_REMEMBERED_CHARS, MAX_REMEMBERED_DOCUMENTS, measureOperation, type OperationLimits, type OperationShape } from './limits';

/**
 * Operation limits on every operation: the document's size, tokens and
 * expanded fields on its text, before anything parses it (once per text
 * that passes, up to the texts limits.ts remembers); its depth, aliases
 * and root fields once it is resolved (measured once per document and
 * operation name).
 */
export function operationLimits(limits: OperationLimits): GatewayFeature {
  const shapes = new DocumentMemo<OperationShape>();
  // Texts that passed the source checks: clients send the same few documents again and again, and these limits never change.
  const passed = new Map<string, true>();
  return {
    name: 'operation limits',
    requestDidStart(request) {
      const query = request.query;
      if (typeof query !== 'string' || passed.has(query)) return undefined;
      const refusal = checkSource(query, limits) ?? checkSourceExpansion(query, limits);
      if (!refusal && query.length <= MAX_REMEMBERED_CHARS) remember(passed, query, true, MAX_REMEMBERED_DOCUMENTS);
      return refusal;
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
