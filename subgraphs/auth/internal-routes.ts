import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../../lib/http-service';
import { IDENTITY_HEADER, IdentityError, type IdentityVerifier } from '../../lib/identity';
import type { Logger } from '../../lib/log';
import type { ApiKeys } from './api-keys';
import type { SessionStore } from './session-store';

/**
 * The routes the gateway calls outside GraphQL to authenticate callers (the
 * issue's shared contract). Each needs a valid signed identity, which only the
 * gateway can make (an anonymous one will do: the gateway asks before it knows
 * who the caller is), so nobody else can probe keys or sessions through them.
 */
export const VERIFY_API_KEY_PATH = '/internal/api-keys/verify';
export const SESSION_STATUS_PATH = '/internal/sessions/status';

/** Both bodies are one short string; anything longer is not from the gateway. */
const MAX_BODY_BYTES = 4096;
const INVALID_KEY = 'the API key is not valid';

type Handler = (body: Record<string, unknown>, res: ServerResponse) => Promise<void>;

class RouteError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export function internalRoutes(deps: { verifier: IdentityVerifier; apiKeys: ApiKeys; sessions: SessionStore; log: Logger }) {
  const handlers: Record<string, Handler> = {
    [VERIFY_API_KEY_PATH]: async (body, res) => {
      if (typeof body.secret !== 'string') throw new RouteError(400, `${VERIFY_API_KEY_PATH} expects a JSON body {"secret": "sk-..."}`);
      const key = await deps.apiKeys.verify(body.secret);
      if (!key) return sendJson(res, 401, { error: INVALID_KEY }, { 'cache-control': 'no-store' });
      sendJson(res, 200, { sub: key.userId, scopes: key.scopes, keyId: key.id }, { 'cache-control': 'no-store' });
    },
    [SESSION_STATUS_PATH]: async (body, res) => {
      if (typeof body.sessionId !== 'string' || body.sessionId === '') {
        throw new RouteError(400, `${SESSION_STATUS_PATH} expects a JSON body {"sessionId": "<jti>"}`);
      }
      sendJson(res, 200, { revoked: await deps.sessions.isRevoked(body.sessionId) }, { 'cache-control': 'no-store' });
    },
  };

  return (req: IncomingMessage, res: ServerResponse): boolean => {
    const path = (req.url ?? '/').split('?')[0];
    const handler = handlers[path];
    if (!handler) return false;
    serve(req, res, path, handler, deps.verifier).catch((error: unknown) => {
      if (error instanceof RouteError) return sendJson(res, error.status, { error: error.message });
      deps.log.error('internal route failed', { error, path });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
    return true;
  };
}

async function serve(req: IncomingMessage, res: ServerResponse, path: string, handler: Handler, verifier: IdentityVerifier): Promise<void> {
  if (req.method !== 'POST') {
    req.resume();
    return sendJson(res, 405, { error: `${path} expects POST, but got ${req.method}` }, { allow: 'POST' });
  }
  const header = req.headers[IDENTITY_HEADER];
  try {
    verifier.verify(Array.isArray(header) ? header[0] : header);
  } catch (error) {
    if (!(error instanceof IdentityError)) throw error;
    req.resume();
    return sendJson(res, 401, { error: error.message });
  }
  await handler(await readJsonObject(req, path), res);
}

async function readJsonObject(req: IncomingMessage, path: string): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RouteError(413, `${path} expects a body of at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new RouteError(400, `${path} expects a JSON body`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RouteError(400, `${path} expects a JSON object`);
  return body as Record<string, unknown>;
}
