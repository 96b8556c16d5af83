/**
 * The `/v1` door: OpenAI's routes on the gateway's port, each a thin layer
 * over one fixed operation of the graph (`graph-operations.ts`). The caller
 * is authenticated exactly as for `/graphql` (the gateway's context
 * function: `Authorization: Bearer sk-…` API keys and session tokens), and
 * every failure, from a malformed body to a subgraph down, is answered in
 * OpenAI's error shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ContextError } from '../../lib/apollo-http';
import { sendJson } from '../../lib/http-service';
import type { GatewayContext } from '../auth/context';
import { fromGraphQLError, invalidRequest, OpenAiError } from './errors';
import type { GraphOperations } from './graph-operations';
import type { OpenAiOptions } from './options';
import { serveChatCompletion } from './serve-chat';
import { serveEmbeddings } from './serve-embeddings';
import { serveModel, serveModels } from './serve-models';

export const OPENAI_PREFIX = '/v1/';

export interface OpenAiDoorDeps {
  graph: GraphOperations;
  /** The gateway's HTTP context function; a `ContextError` refuses the caller. */
  context: (req: IncomingMessage) => Promise<GatewayContext>;
  options: OpenAiOptions;
  bodyLimitBytes: number;
}

type Route = (res: ServerResponse, body: unknown, context: GatewayContext) => Promise<void>;

/** The request's `Idempotency-Key` (a retry-safe whole completion, serve-chat.ts), undefined when it sent none. */
function idempotencyKeyOf(req: IncomingMessage): string | undefined {
  const value = req.headers['idempotency-key'];
  if (Array.isArray(value)) throw invalidRequest('Idempotency-Key', `the Idempotency-Key header expects one value, but got ${value.length}`);
  return value;
}

export function openAiDoor(deps: OpenAiDoorDeps): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const { graph, options } = deps;
  const route = (req: IncomingMessage, method: string, path: string): Route | undefined => {
    if (method === 'POST' && path === '/v1/chat/completions') {
      return (res, body, context) => serveChatCompletion(graph, res, body, context, { keepAliveMs: options.keepAliveMs, idempotencyKey: idempotencyKeyOf(req) });
    }
    if (method === 'POST' && path === '/v1/embeddings') return (res, body, context) => serveEmbeddings(graph, res, body, context);
    if (method === 'GET' && path === '/v1/models') return (res, _, context) => serveModels(graph, res, context);
    const model = /^\/v1\/models\/(.+)$/.exec(path);
    if (method === 'GET' && model) return (res, _, context) => serveModel(graph, res, modelId(model[1]), context);
    return undefined;
  };

  return async (req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0];
    try {
      const serve = route(req, method, path);
      if (!serve)
        throw new OpenAiError(
          404,
          'invalid_request_error',
          'unknown_url',
          `Invalid URL (${method} ${path}): Sluice serves POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models and GET /v1/models/{id}`,
        );
      const body = method === 'POST' ? await readJson(req, deps.bodyLimitBytes) : undefined;
      await serve(res, body, await callerContext(deps, req));
    } catch (error) {
      if (!(error instanceof OpenAiError)) throw error;
      // Once a stream has started, its errors are events of the stream (serve-chat.ts).
      if (!res.headersSent) sendJson(res, error.status, error.body, error.headers);
    }
  };
}

function modelId(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalidRequest('model', `the model id in the path expects URL encoding, but got ${JSON.stringify(segment)}`);
  }
}

async function callerContext(deps: OpenAiDoorDeps, req: IncomingMessage): Promise<GatewayContext> {
  try {
    return await deps.context(req);
  } catch (error) {
    if (error instanceof ContextError) throw fromGraphQLError({ message: error.message, extensions: { code: error.code } });
    throw error;
  }
}

/** The JSON body, at most `limit` bytes; OpenAI's SDKs always send JSON. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  // Read to the end even past the limit: leaving the rest unread would cut the connection before the answer.
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) throw new OpenAiError(413, 'invalid_request_error', 'request_too_large', `the request body expects at most ${limit} bytes, but got ${size}`);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (error) {
    throw invalidRequest('body', `the request body expects JSON, but it does not parse: ${(error as Error).message}`);
  }
}
