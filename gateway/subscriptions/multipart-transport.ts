/**
 * Apollo's multipart HTTP subscription protocol: a POST to /graphql with
 * `Accept: multipart/mixed;subscriptionSpec="1.0"` gets a
 * `multipart/mixed; boundary="graphql"` response whose parts are
 * `{"payload": <result>}` per event and `{}` heartbeats, closed by
 * `--graphql--` when the subscription ends. The client ends it by closing
 * the request, which unsubscribes upstream. Queries and mutations with that
 * Accept header are left to Apollo Server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GraphQLError } from 'graphql';
import { ErrorCode, httpStatusFor } from '../../lib/errors';
import { sendJson } from '../../lib/http-service';
import type { GatewayContext } from '../auth/context';
import type { SubscriptionRequest, SubscriptionService } from './subscription-service';

const BOUNDARY = 'graphql';
const PART_HEADER = `\r\n--${BOUNDARY}\r\ncontent-type: application/json; charset=utf-8\r\n\r\n`;

export function wantsMultipartSubscription(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return req.method === 'POST' && /multipart\/mixed/i.test(accept) && /subscriptionSpec/i.test(accept);
}

/**
 * Serves the request if it is a subscription; returns false (untouched) for
 * any other operation.
 */
export async function serveMultipartSubscription(subscriptions: SubscriptionService, res: ServerResponse, body: unknown, context: GatewayContext, heartbeatMs: number): Promise<boolean> {
  if (typeof body !== 'object' || body === null) return false;
  const request = body as SubscriptionRequest;
  // The HTTP handler has run the source stage on every request already.
  const prepared = subscriptions.prepare(request, { sourceChecked: true });
  if (Array.isArray(prepared)) return false; // Apollo Server answers malformed operations with its usual errors
  if (prepared.operation.operation !== 'subscription') return false;

  const connection = subscriptions.openConnection(context);
  // Listened to before admission, which waits on Redis: a client that leaves meanwhile must still end the stream.
  let clientGone = false;
  res.once('close', () => (clientGone = true));
  const events = await subscriptions.start(connection, prepared, request, context);
  if (!Array.isArray(events) && clientGone) {
    await events.return(undefined);
    await connection.close();
    return true;
  }
  if (Array.isArray(events)) {
    await connection.close();
    for (const [name, value] of Object.entries(refusalHeaders(events))) res.setHeader(name, value);
    sendJson(res, refusalStatus(events), { errors: events.map((e: GraphQLError) => e.toJSON()) });
    return true;
  }

  res.writeHead(200, {
    'content-type': `multipart/mixed; boundary="${BOUNDARY}"; subscriptionSpec="1.0"`,
    'cache-control': 'no-cache, no-store',
    'x-accel-buffering': 'no',
  });
  const write = (json: string) => res.write(`${PART_HEADER}${json}`);
  write('{}');
  const heartbeat = setInterval(() => write('{}'), heartbeatMs);
  res.once('close', () => void events.return(undefined));
  try {
    for await (const event of events) {
      if (clientGone) break;
      write(JSON.stringify({ payload: event }));
    }
  } finally {
    clearInterval(heartbeat);
    await connection.close();
    if (!clientGone) res.end(`\r\n--${BOUNDARY}--\r\n`);
  }
  return true;
}

/** The HTTP status of a refused subscription, as for the same refusal elsewhere at the gateway. */
function refusalStatus(errors: readonly GraphQLError[]): number {
  const codes = new Set(errors.map((e) => e.extensions.code));
  const decisive = REFUSAL_PRECEDENCE.find((code) => codes.has(code));
  // Anything else (parse, validation, limits) is the request's fault.
  return decisive ? httpStatusFor(decisive) : 400;
}

/** When a refusal carries several codes, the one whose status the client should act on first. */
const REFUSAL_PRECEDENCE = [ErrorCode.RateLimited, ErrorCode.ServiceUnavailable, ErrorCode.Unauthenticated, ErrorCode.Forbidden] as const;

/** The RateLimit headers of a RATE_LIMITED refusal, from its error's extensions (the limiter puts the numbers there). */
function refusalHeaders(errors: readonly GraphQLError[]): Record<string, string> {
  const limited = errors.find((e) => e.extensions.code === ErrorCode.RateLimited)?.extensions;
  if (!limited || typeof limited.limit !== 'number') return {};
  const retryAfter = typeof limited.retryAfter === 'number' ? limited.retryAfter : undefined;
  const headers: Record<string, string> = { 'ratelimit-limit': String(limited.limit), 'ratelimit-remaining': String(typeof limited.remaining === 'number' ? limited.remaining : 0) };
  if (retryAfter !== undefined) headers['ratelimit-reset'] = headers['retry-after'] = String(retryAfter);
  return headers;
}
