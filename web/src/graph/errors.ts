import { formatMicros } from '../money';

/**
 * One place that turns what the graph sends back into a sentence a person
 * understands. The amounts, waits and scopes come from `extensions`, as the
 * services put them there (lib/errors.ts lists the codes and their fields);
 * any code without a rule here falls back to the service's own message, which
 * is written to say what was wrong.
 */
export interface GraphErrorLike {
  message: string;
  extensions?: Readonly<Record<string, unknown>>;
}

const RATE_UNITS: Record<string, string> = {
  rpm: 'requests a minute',
  tpm: 'tokens a minute',
  'ip-rpm': 'requests a minute from your network address',
  streams: 'live streams',
};

/** The readable sentence for one GraphQL error. */
export function describeGraphError(error: GraphErrorLike): string {
  const ext = error.extensions ?? {};
  const number = (key: string) => (typeof ext[key] === 'number' ? (ext[key] as number) : undefined);
  switch (ext.code) {
    case 'INSUFFICIENT_BALANCE': {
      const needed = number('needed');
      const available = number('available');
      if (needed === undefined || available === undefined) break;
      return `Your balance is too low: this request may cost up to ${formatMicros(needed)}, and ${formatMicros(available)} is available. Top up, or ask for a shorter answer.`;
    }
    case 'SPEND_LIMIT_EXCEEDED': {
      const [cap, spent, reserved, needed] = ['cap', 'spent', 'reserved', 'needed'].map(number);
      if (cap === undefined || spent === undefined || needed === undefined) break;
      const period = ext.period === 'MONTH' ? 'monthly' : 'daily';
      return `This API key's ${period} spend limit of ${formatMicros(cap)} would be passed: ${formatMicros(spent)} is spent${reserved ? ` and ${formatMicros(reserved)} is held by running requests` : ''}, and this request may cost up to ${formatMicros(needed)}.`;
    }
    case 'RATE_LIMITED': {
      const limit = number('limit');
      const unit = RATE_UNITS[String(ext.kind)] ?? 'requests';
      const of = limit === undefined ? '' : ` (the limit is ${limit.toLocaleString('en-US')} ${unit})`;
      if (ext.retryAfter === null) return `This request is larger than the rate limit allows${of}, so it can never be admitted: ask for fewer tokens.`;
      const wait = number('retryAfter');
      if (wait !== undefined) return `Too many requests right now${of}: try again in ${wait} ${wait === 1 ? 'second' : 'seconds'}.`;
      if (ext.kind === 'streams' || ext.scope === 'connection') return `Too many live streams at once${of}: stop one before starting another.`;
      break;
    }
    case 'FORBIDDEN': {
      const missing = Array.isArray(ext.missingScopes) ? (ext.missingScopes as unknown[]).map(String) : [];
      if (missing.length === 0) break;
      const names = missing.map((scope) => `“${scope}”`).join(' and ');
      return `You are not allowed to do this: it needs the ${names} ${missing.length === 1 ? 'scope' : 'scopes'}, which this session or key does not have.`;
    }
    case 'SUBGRAPH_UNAVAILABLE': {
      const service = typeof ext.service === 'string' ? `the ${ext.service} service` : 'a service';
      const wait = number('retryAfter');
      return `Part of Sluice is unavailable right now (${service})${wait ? `: try again in ${wait} ${wait === 1 ? 'second' : 'seconds'}` : ': try again shortly'}.`;
    }
  }
  return sentence(error.message);
}

/**
 * The readable sentence for anything a request or a stream can fail with:
 * Apollo Client's errors (GraphQL errors, HTTP errors with a GraphQL body,
 * network failures), a graphql-ws close, or a plain Error.
 */
export function describeError(error: unknown): string {
  const graphErrors = graphErrorsOf(error);
  if (graphErrors.length > 0) return unique(graphErrors.map(describeGraphError)).join(' ');
  const close = closeOf(error);
  if (close) {
    if (close.code === 4401) return 'You are signed out (the session expired or was ended): sign in again.';
    return `The live connection to Sluice closed${close.reason ? ` (${close.reason})` : ''}: try again.`;
  }
  if (error instanceof Error) {
    const status = (error as { statusCode?: unknown }).statusCode;
    if (typeof status === 'number') return `Sluice answered with HTTP ${status}${status >= 500 ? ': a service is failing, try again shortly' : ''}.`;
    if (isNetworkFailure(error)) return 'Cannot reach Sluice: check your connection, or that the gateway is running.';
    return sentence(error.message);
  }
  return 'Something went wrong, and the error said nothing more.';
}

/** Codes that say a stream was cut by a server lost under it, not by anything about the request. */
const CUT_CODES = new Set(['SERVICE_UNAVAILABLE', 'SUBGRAPH_UNAVAILABLE', 'GPU_UNAVAILABLE']);

/** True for an error code (a GraphQL error's, a last chunk's) that says the stream was cut, not refused. */
export function isCutCode(code: unknown): boolean {
  return typeof code === 'string' && CUT_CODES.has(code);
}

/**
 * True when a stream that failed with `error` was cut rather than refused, so
 * it can go on where it was (a resumable stream): the server under it asked it
 * to subscribe again (SERVICE_UNAVAILABLE) or was lost, the socket closed
 * without a protocol reason (codes below 4000, or 4503: credentials could not
 * be checked for now), or the network failed.
 */
export function isStreamCut(error: unknown): boolean {
  const graphErrors = graphErrorsOf(error);
  if (graphErrors.length > 0) return graphErrors.every((e) => isCutCode(e.extensions?.code));
  const close = closeOf(error);
  if (close) return close.code < 4000 || close.code === 4503;
  return error instanceof Error && isNetworkFailure(error);
}

function isNetworkFailure(error: Error): boolean {
  return error.name === 'TypeError' || /fetch|network|socket/i.test(error.message);
}

/** True when `error` says the credentials are no longer valid, so the session must be dropped. */
export function isUnauthenticated(error: unknown): boolean {
  const close = closeOf(error);
  if (close) return close.code === 4401;
  if ((error as { statusCode?: unknown } | null)?.statusCode === 401) return true;
  return graphErrorsOf(error).some((e) => e.extensions?.code === 'UNAUTHENTICATED');
}

/** The GraphQL errors inside an Apollo error, an HTTP error's JSON body, or an array graphql-ws rejected with. */
function graphErrorsOf(error: unknown): GraphErrorLike[] {
  if (Array.isArray(error)) return error.filter(isGraphError);
  if (typeof error !== 'object' || error === null) return [];
  const errors = (error as { errors?: unknown }).errors;
  if (Array.isArray(errors)) return errors.filter(isGraphError);
  const body = (error as { bodyText?: unknown }).bodyText;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { errors?: unknown };
      if (Array.isArray(parsed.errors)) return parsed.errors.filter(isGraphError);
    } catch {
      // Not a GraphQL body (a proxy's HTML page, say): the status describes it.
    }
  }
  return [];
}

function isGraphError(value: unknown): value is GraphErrorLike {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string';
}

/** A WebSocket close: graphql-ws's CloseEvent, or the Error Apollo's GraphQLWsLink makes of one ("Socket closed with event 4401 Unauthorized: …"). */
function closeOf(value: unknown): { code: number; reason: string } | undefined {
  if (value instanceof Error) {
    const match = /^Socket closed(?: with event (\d+))? ?(.*)$/s.exec(value.message);
    return match ? { code: Number(match[1] ?? 1006), reason: match[2].trim() } : undefined;
  }
  const event = value as { code?: unknown; reason?: unknown } | null;
  return typeof event === 'object' && event !== null && typeof event.code === 'number' && typeof event.reason === 'string' ? { code: event.code, reason: event.reason } : undefined;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

/** Capital first letter and a closing full stop, as the services write lower-case clauses. */
function sentence(text: string): string {
  const trimmed = text.trim();
  if (!trimmed) return 'Something went wrong, and the error said nothing more.';
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}
