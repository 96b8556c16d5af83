import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ApolloServer, type BaseContext, HeaderMap } from '@apollo/server';
import { ErrorCode, httpStatusFor } from './errors';
import { sendJson } from './http-service';

/**
 * Adapts Node's `http` request/response to Apollo Server's transport-neutral
 * `executeHTTPGraphQLRequest`, the way Apollo's own integrations do, so each
 * service keeps full control of its other routes (probes, JWKS, WebSocket
 * upgrades) without pulling in Express.
 */
export interface ApolloHttpOptions<TContext extends BaseContext> {
  /** Builds the context; a throw here becomes the response (see `ContextError`). */
  context: (req: IncomingMessage) => Promise<TContext>;
  /**
   * Largest accepted request body.
   * @default 1 MiB
   */
  bodyLimitBytes?: number;
  /**
   * Sees each request once its body is read and its context built, before
   * Apollo Server does; returns true when it has answered (e.g. a streamed
   * subscription), false to let Apollo Server handle it.
   */
  intercept?: (req: IncomingMessage, res: ServerResponse, body: unknown, context: TContext) => Promise<boolean>;
  /** What to write for a complete response body: the body, or bytes of it already made (shared by many requests). @default the body */
  encode?: (context: TContext, body: string) => Buffer | string;
}

/** Thrown by a context function to refuse a request with a status and a coded error. */
export class ContextError extends Error {
  /** The HTTP status, from the one ErrorCode → status map. */
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.status = httpStatusFor(code);
  }
}

class BodyTooLarge extends Error {}

export function apolloHttpHandler<TContext extends BaseContext>(server: ApolloServer<TContext>, options: ApolloHttpOptions<TContext>): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const limit = options.bodyLimitBytes ?? 1024 * 1024;
  return async (req, res) => {
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    let body: unknown;
    try {
      body = await readBody(req, limit, headers.get('content-type'));
    } catch (error) {
      if (error instanceof BodyTooLarge) {
        return sendJson(res, httpStatusFor(ErrorCode.PayloadTooLarge), graphqlError(ErrorCode.PayloadTooLarge, `request body is larger than the limit of ${limit} bytes`));
      }
      return sendJson(res, httpStatusFor(ErrorCode.BadUserInput), graphqlError(ErrorCode.BadUserInput, `request body is not valid JSON: ${(error as Error).message}`));
    }
    let context: TContext;
    try {
      context = await options.context(req);
    } catch (error) {
      if (error instanceof ContextError) return sendJson(res, error.status, graphqlError(error.code, error.message));
      throw error;
    }
    if (options.intercept && (await options.intercept(req, res, body, context))) return;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const response = await server.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: (req.method ?? 'GET').toUpperCase(), headers, search: url.search, body },
      context: async () => context,
    });
    for (const [key, value] of response.headers) res.setHeader(key, value);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      res.end(options.encode ? options.encode(context, response.body.string) : response.body.string);
      return;
    }
    for await (const chunk of response.body.asyncIterator) {
      res.write(chunk);
    }
    res.end();
  };
}

function graphqlError(code: ErrorCode, message: string) {
  return { errors: [{ message, extensions: { code } }] };
}

/**
 * The body, parsed when it is JSON. Read with 'data' events rather than an
 * async iterator: a body is nearly always one chunk, and the iterator's
 * promise per chunk and end-of-stream set-up showed in the gateway's
 * profile. An oversized body stops the reading and destroys the request, as
 * leaving an iteration early does.
 */
function readBody(req: IncomingMessage, limit: number, contentType: string | undefined): Promise<unknown> {
  if (req.method === 'GET' || req.method === 'HEAD') return Promise.resolve(undefined);
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.destroy();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', reject);
    req.once('end', () => {
      try {
        resolve(parseBody((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)).toString('utf8'), contentType));
      } catch (error) {
        reject(error);
      }
    });
  });
}

function parseBody(text: string, contentType: string | undefined): unknown {
  // Apollo Server rejects non-JSON content types itself (and its CSRF
  // prevention depends on seeing them), so only JSON is parsed here.
  if (!contentType?.toLowerCase().includes('json')) return text;
  return text === '' ? undefined : JSON.parse(text);
}
