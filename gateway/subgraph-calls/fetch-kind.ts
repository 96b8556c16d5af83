/**
 * Whether a subgraph fetch is a query — the only kind that may be retried or
 * shared with an identical fetch. The fetcher sees only the request body
 * RemoteGraphQLDataSource wrote (`{"query":"…",…}`, query first), so the
 * common case is read from its first bytes; anything the quick look cannot
 * settle for certain is parsed.
 */
import { getOperationAST, parse } from 'graphql';

const PARSED_LIMIT = 1_000;
const parsed = new Map<string, boolean>();

export function isQueryFetch(body: string | Buffer | undefined): boolean {
  if (typeof body !== 'string') return false;
  // A document that opens with a query and never spells "mutation" or
  // "subscription" cannot select anything but a query.
  const opensAsQuery = body.startsWith('{"query":"{') || /^\{"query":"query[\s({\\]/.test(body);
  if (opensAsQuery && !body.includes('mutation') && !body.includes('subscription')) return true;
  return parsedIsQuery(body);
}

function parsedIsQuery(body: string): boolean {
  let request: { query?: unknown; operationName?: unknown };
  try {
    request = JSON.parse(body) as typeof request;
  } catch {
    return false;
  }
  if (typeof request.query !== 'string') return false;
  const key = `${typeof request.operationName === 'string' ? request.operationName : ''}\n${request.query}`;
  let isQuery = parsed.get(key);
  if (isQuery === undefined) {
    try {
      isQuery = getOperationAST(parse(request.query), typeof request.operationName === 'string' ? request.operationName : undefined)?.operation === 'query';
    } catch {
      isQuery = false;
    }
    // Fetch documents come from query plans, so there are few of them; the bound only guards against a leak.
    if (parsed.size >= PARSED_LIMIT) parsed.clear();
    parsed.set(key, isQuery);
  }
  return isQuery;
}
