import type { GatewayFeature } from '../pipeline/feature';
import type { Safelist } from './safelist';

/**
 * Safelist mode on every request, before it is parsed: an operation not in
 * the manifest is refused with PERSISTED_QUERY_NOT_IN_SAFELIST (HTTP 400). A
 * registered id is replaced by its document, without the persistedQuery
 * extension: Apollo Server then runs it without looking it up in, or writing
 * it to, the APQ cache, and subscriptions, which the gateway runs itself, get
 * the document too.
 */
export function safelistFeature(safelist: Safelist): GatewayFeature {
  return {
    name: 'safelist',
    requestDidStart(request) {
      const document = safelist.resolve(request);
      if (typeof document === 'object') return document;
      if (document !== undefined && request.query !== document) {
        request.query = document;
        const rest = withoutPersistedQuery(request.extensions);
        // Apollo Server refuses an `extensions` key that is present but not an object.
        if (rest) request.extensions = rest;
        else delete request.extensions;
      }
      return undefined;
    },
  };
}

function withoutPersistedQuery(extensions: unknown): Record<string, unknown> | undefined {
  if (typeof extensions !== 'object' || extensions === null) return undefined;
  const { persistedQuery: _, ...rest } = extensions as Record<string, unknown>;
  return Object.keys(rest).length ? rest : undefined;
}
