/**
 * The JSON routes services answer each other outside GraphQL (auth's key and
 * session checks for the gateway, billing's reservations for inference). Each
 * is `POST` with a small JSON object and the caller's signed identity header,
 * which only the gateway can make, issued for the service that serves the
 * route (its audience), so nobody else can reach them; the answer
 * is never cached.
 *
 * 200 is the handler's result. A refusal is `{error: <message>, code:
 * <ErrorCode>, extensions?}` with the status `httpStatusFor(code)` (405 for a
 * method other than POST); a failure the handler did not expect is 503
 * SERVICE_UNAVAILABLE with the route's `unavailable` message, since what
 * fails there is the service's store.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { ErrorCode, httpStatusFor } from './errors';
import { sendJson } from './http-service';
import { IDENTITY_HEADER, IdentityError, type Identity, type IdentityVerifier } from './identity';
import type { Logger } from './log';

/** Every body is a few short fields; anything longer is not from a sibling service. */
const MAX_BODY_BYTES = 4096;
const NO_STORE = { 'cache-control': 'no-store' };

export interface InternalRoute {
  path: string;
  /** The JSON object the route expects, as the caller is told when the body is not one, e.g. `{"secret": "sk-..."}`. */
  body: string;
  /** What the caller is told when the handler fails unexpectedly: what did not happen. */
  unavailable: string;
  /** The 200 answer; a refusal throws `RouteRefusal` or a coded GraphQL error (`codedError`). */
  handle(body: Record<string, unknown>, identity: Identity): Promise<unknown>;
}

/** A refusal whose code decides the status. */
export class RouteRefusal extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** A `routes` function for startSubgraph: true when the request was for one of `routes` (it is then answered). */
export function internalRouter(routes: readonly InternalRoute[], deps: { service: string; verifier: IdentityVerifier; log: Logger }) {
  const byPath = new Map(routes.map((route) => [route.path, route]));
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const route = byPath.get((req.url ?? '/').split('?')[0]);
    if (!route) return false;
    serve(req, res, route, deps).catch((error: unknown) => {
      const refusal = asRefusal(error);
      if (refusal) return refuse(res, httpStatusFor(refusal.code), refusal);
      deps.log.error('internal route failed', { error, path: route.path });
      if (res.headersSent) return void res.destroy();
      refuse(res, httpStatusFor(ErrorCode.ServiceUnavailable), new RouteRefusal(ErrorCode.ServiceUnavailable, route.unavailable));
    });
    return true;
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, route: InternalRoute, deps: { service: string; verifier: IdentityVerifier }): Promise<void> {
  if (req.method !== 'POST') {
    req.resume();
    return refuse(res, 405, new RouteRefusal(ErrorCode.BadUserInput, `${route.path} expects POST, but got ${req.method}`), { allow: 'POST' });
  }
  const header = req.headers[IDENTITY_HEADER];
  let identity: Identity;
  try {
    identity = deps.verifier.verify(Array.isArray(header) ? header[0] : header, deps.service);
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error;
    req.resume();
    throw new RouteRefusal(ErrorCode.Unauthenticated, error.message);
  }
  const answer = await route.handle(await readJsonObject(req, route), identity);
  sendJson(res, 200, answer, NO_STORE);
}

async function readJsonObject(req: IncomingMessage, route: InternalRoute): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RouteRefusal(ErrorCode.PayloadTooLarge, `${route.path} expects a body of at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new RouteRefusal(ErrorCode.BadUserInput, `${route.path} expects a JSON body ${route.body}`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RouteRefusal(ErrorCode.BadUserInput, `${route.path} expects a JSON object ${route.body}`);
  return body as Record<string, unknown>;
}

/** A refusal, or a coded GraphQL error from the domain code (it raises those for GraphQL too) taken as one. */
function asRefusal(error: unknown): RouteRefusal | undefined {
  if (error instanceof RouteRefusal) return error;
  if (!(error instanceof GraphQLError)) return undefined;
  const { code, ...extensions } = error.extensions;
  return Object.values<unknown>(ErrorCode).includes(code) ? new RouteRefusal(code as ErrorCode, error.message, extensions) : undefined;
}

function refuse(res: ServerResponse, status: number, refusal: RouteRefusal, headers: Record<string, string> = {}): void {
  const extensions = Object.keys(refusal.extensions).length > 0 ? { extensions: refusal.extensions } : {};
  sendJson(res, status, { error: refusal.message, code: refusal.code, ...extensions }, { ...NO_STORE, ...headers });
}
