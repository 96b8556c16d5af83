import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError } from 'graphql';
import { RESERVATIONS_PATH } from '../../lib/billing-client';
import { ErrorCode } from '../../lib/errors';
import { sendJson } from '../../lib/http-service';
import { IDENTITY_HEADER, IdentityError, type IdentityVerifier } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import type { Ledger } from './ledger';

const MAX_BODY_BYTES = 4096;

const STATUS: Partial<Record<string, number>> = {
  [ErrorCode.BadUserInput]: 400,
  [ErrorCode.Unauthenticated]: 401,
  [ErrorCode.InsufficientBalance]: 402,
  [ErrorCode.SpendLimitExceeded]: 402,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.ModelNotPriced]: 422,
};

class RouteError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The route behind lib/billing-client.ts, which inference calls before a completion starts:
 * `POST /internal/reservations` with the caller's signed identity header,
 * forwarded unchanged, and `{reservationId, model, promptTokens,
 * maxCompletionTokens}`. The user is the identity's `sub`, the API key its
 * `keyId`, so a caller can only ever hold its own money. No scope is asked
 * for: whether the caller may run the request is for the service that runs it
 * (knowledge's answers reach inference with a `knowledge:read` identity).
 *
 * 200 `{reservationId, amountMicros, expiresAt, state}`; a refusal is
 * `{error: {code, message, extensions}}` with the code the client re-raises as
 * a GraphQL error: 402 INSUFFICIENT_BALANCE / SPEND_LIMIT_EXCEEDED,
 * 422 MODEL_NOT_PRICED, 409 CONFLICT, 400 BAD_USER_INPUT, 401 UNAUTHENTICATED,
 * 503 SERVICE_UNAVAILABLE (Redis unreachable).
 */
export function reservationRoute(deps: { verifier: IdentityVerifier; ledger: Ledger; log: Logger }) {
  return (req: IncomingMessage, res: ServerResponse): boolean => {
    if ((req.url ?? '/').split('?')[0] !== RESERVATIONS_PATH) return false;
    serve(req, res, deps).catch((error: unknown) => {
      if (error instanceof RouteError) return refuse(res, error.status, error.code, error.message);
      if (error instanceof GraphQLError) {
        const { code, ...extensions } = error.extensions as { code: string };
        return refuse(res, STATUS[code] ?? 500, code, error.message, extensions);
      }
      deps.log.error('reservation failed', { error });
      if (res.headersSent) return void res.destroy();
      refuse(res, 503, ErrorCode.ServiceUnavailable, 'billing failed to reserve (its store may be unreachable); nothing was reserved');
    });
    return true;
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, deps: { verifier: IdentityVerifier; ledger: Ledger }): Promise<void> {
  if (req.method !== 'POST') {
    req.resume();
    res.setHeader('allow', 'POST');
    throw new RouteError(405, ErrorCode.BadUserInput, `${RESERVATIONS_PATH} expects POST, but got ${req.method}`);
  }
  const header = req.headers[IDENTITY_HEADER];
  let identity;
  try {
    identity = deps.verifier.verify(Array.isArray(header) ? header[0] : header);
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error;
    req.resume();
    throw new RouteError(401, ErrorCode.Unauthenticated, error.message);
  }
  if (!identity.sub) {
    req.resume();
    throw new RouteError(401, ErrorCode.Unauthenticated, `${RESERVATIONS_PATH} requires a signed-in caller, but the identity is anonymous`);
  }
  const body = await readJsonObject(req);
  const reservation = await deps.ledger.reserve({
    reservationId: body.reservationId as string,
    userId: identity.sub,
    keyId: identity.keyId ?? null,
    model: body.model as string,
    promptTokens: body.promptTokens as number,
    maxCompletionTokens: body.maxCompletionTokens as number,
  });
  sendJson(res, 200, reservation, { 'cache-control': 'no-store' });
}

function refuse(res: ServerResponse, status: number, code: string, message: string, extensions: Record<string, unknown> = {}): void {
  sendJson(res, status, { error: { code, message, extensions } }, { 'cache-control': 'no-store' });
}

async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RouteError(413, ErrorCode.PayloadTooLarge, `${RESERVATIONS_PATH} expects a body of at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new RouteError(400, ErrorCode.BadUserInput, `${RESERVATIONS_PATH} expects a JSON body`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new RouteError(400, ErrorCode.BadUserInput, `${RESERVATIONS_PATH} expects a JSON object {reservationId, model, promptTokens, maxCompletionTokens}`);
  }
  return body as Record<string, unknown>;
}
