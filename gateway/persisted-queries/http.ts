import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../../lib/http-service';
import type { PersistedRequest, Safelist } from './safelist';

/**
 * The safelist on an HTTP request, before Apollo Server sees it (an error
 * thrown from an Apollo hook before parsing reaches the client as a 500).
 * Answers 400 with PERSISTED_QUERY_NOT_IN_SAFELIST and returns true when the
 * operation is not registered. A registered id is replaced by its document
 * (in the POST body, or in the URL of a GET), without the persistedQuery
 * extension: Apollo Server then runs it without looking it up in, or writing
 * it to, the APQ cache, and multipart subscriptions, served before Apollo
 * Server, get the document too.
 */
export function refuseUnlisted(req: IncomingMessage, res: ServerResponse, body: unknown, safelist: Safelist): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return refuseUnlistedGet(req, res, safelist);
  const requests = (Array.isArray(body) ? body : [body]).filter((r): r is PersistedRequest => typeof r === 'object' && r !== null);
  for (const request of requests) {
    const document = safelist.resolve(request);
    if (typeof document === 'object') {
      sendJson(res, 400, { errors: [document.toJSON()] });
      return true;
    }
    if (document !== undefined && request.query !== document) {
      request.query = document;
      const rest = withoutPersistedQuery(request.extensions);
      // Apollo Server refuses an `extensions` key that is present but not an object.
      if (rest) request.extensions = rest;
      else delete request.extensions;
    }
  }
  return false;
}

function refuseUnlistedGet(req: IncomingMessage, res: ServerResponse, safelist: Safelist): boolean {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const query = url.searchParams.get('query') ?? undefined;
  let extensions: unknown;
  try {
    extensions = JSON.parse(url.searchParams.get('extensions') ?? 'null');
  } catch {
    return false; // Apollo Server answers malformed parameters with its own 400
  }
  const document = safelist.resolve({ query, extensions });
  if (typeof document === 'object') {
    sendJson(res, 400, { errors: [document.toJSON()] });
    return true;
  }
  if (document !== undefined && query !== document) {
    url.searchParams.set('query', document);
    const rest = withoutPersistedQuery(extensions);
    if (rest) url.searchParams.set('extensions', JSON.stringify(rest));
    else url.searchParams.delete('extensions');
    // The HTTP handler reads the GraphQL parameters from req.url after this hook.
    req.url = url.pathname + url.search;
  }
  return false;
}

function withoutPersistedQuery(extensions: unknown): Record<string, unknown> | undefined {
  if (typeof extensions !== 'object' || extensions === null) return undefined;
  const { persistedQuery: _, ...rest } = extensions as Record<string, unknown>;
  return Object.keys(rest).length ? rest : undefined;
}
