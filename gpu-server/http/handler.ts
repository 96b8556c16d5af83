/**
 * The HTTP adapter: KServe v2 REST as Triton serves it on :8000, on top of
 * the InferenceCore. Routes (`{v}` optional everywhere as `/versions/{v}`):
 *
 *   GET  /v2/health/live, /v2/health/ready        200, or 400 when not (as Triton)
 *   GET  /v2                                      server metadata
 *   GET  /v2/models/{m}                           model metadata
 *   GET  /v2/models/{m}/ready                     200, or 400 when not ready
 *   GET  /v2/models/{m}/config                    the model configuration as JSON
 *   GET  /v2/models/{m}/stats, /v2/models/stats   {"model_stats": […]}
 *   POST /v2/repository/index                     [{name, version, state, reason}]
 *   POST /v2/repository/models/{m}/load|unload    model control
 *   POST /v2/models/{m}/infer                     KServe v2 inference (JSON + binary tensors)
 *   POST /v2/models/{m}/generate[_stream]         Triton's generate extension (generate.ts)
 *
 * Errors are `{"error": "<message>"}` with the status of status.ts; a wrong
 * method is 405, an unknown path 404, a body over the limit 413. A route of a
 * restricted category (../access/restrictions.ts) without its header is 403,
 * and load/unload outside `explicit` model control 503, both as Triton.
 */
import type * as http from 'node:http';
import type { Logger } from '../../lib/log';
import { httpRestrictedMessage, type RestrictedCategory, type Restrictions } from '../access/restrictions';
import { invalidArgument, unimplemented } from '../core/errors';
import type { InferenceCore } from '../core/inference-core';
import { BodyTooLargeError, expectObject, jsonKind, parseJson, readBody } from './body';
import { modelControlRefusal, type ModelControlMode } from '../repository/model-control';
import { handleGenerate } from './generate';
import { encodeInferResponse, INFERENCE_HEADER_CONTENT_LENGTH, parseInferRequest } from './infer-codec';
import { sendBody, sendEmpty, sendError, sendJson } from './respond';
import { httpError } from './status';

export interface HttpHandlerOptions {
  logger: Logger;
  /** Largest request body accepted; larger ones get 413 without being read. @default 64 MiB */
  maxBodyBytes?: number;
  /** Categories that need a header (`--http-restricted-api`). @default none */
  restrictions?: Restrictions;
  /** Whether load/unload are allowed (`--model-control-mode`). @default 'none' */
  modelControl?: ModelControlMode;
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

type Method = 'GET' | 'POST';

interface Route {
  method: Method;
  category: RestrictedCategory;
  handle(ctx: RequestContext): Promise<void> | void;
}

interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  /** The request body, read (within the limit) on first use. */
  body(): Promise<Buffer>;
}

const MODEL_PATH = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(?:\/(ready|config|stats|infer|generate|generate_stream))?$/;
const REPOSITORY_PATH = /^\/v2\/repository(?:\/([^/]+))?\/(?:index|models\/([^/]+)\/(load|unload))$/;

export function createHttpHandler(core: InferenceCore, options: HttpHandlerOptions): http.RequestListener {
  const limit = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const route = routes(core, options.logger, options.modelControl ?? 'none');
  const restrictions = options.restrictions;

  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    let body: Promise<Buffer> | undefined;
    const ctx: RequestContext = { req, res, body: () => (body ??= readBody(req, limit)) };
    Promise.resolve()
      .then(() => {
        const found = route(path);
        if (!found) return sendError(res, 404, `Not Found: no route for ${req.method} ${path}; the KServe v2 paths start with /v2/health, /v2/models or /v2/repository`);
        const method = req.method === 'HEAD' ? 'GET' : req.method;
        if (method !== found.method) {
          return sendError(res, 405, `Method Not Allowed: ${req.method} ${path} expects ${found.method}`, { allow: found.method === 'GET' ? 'GET, HEAD' : found.method });
        }
        const restriction = restrictions?.get(found.category);
        if (restriction && !restriction.matches(req.headers[restriction.header])) return sendError(res, 403, httpRestrictedMessage(restriction));
        return found.handle(ctx);
      })
      .catch((error: unknown) => {
        if (error instanceof BodyTooLargeError) {
          // The rest of the body is not read, so the connection cannot be reused.
          if (!res.headersSent) sendError(res, 413, error.message, { connection: 'close' });
          return;
        }
        const { status, message } = httpError(error);
        if (status === 500) options.logger.error('HTTP request failed', { method: req.method, path, error: message });
        if (res.headersSent) res.destroy();
        else if (!res.destroyed) sendError(res, status, message);
      });
  };
}

/** The route table: a path → its method and handler, or undefined. */
function routes(core: InferenceCore, logger: Logger, modelControl: ModelControlMode): (path: string) => Route | undefined {
  const get = (category: RestrictedCategory, handle: Route['handle']): Route => ({ method: 'GET', category, handle });
  const post = (category: RestrictedCategory, handle: Route['handle']): Route => ({ method: 'POST', category, handle });
  const fixed = new Map<string, Route>([
    ['/v2/health/live', get('health', ({ res }) => sendEmpty(res, core.isLive() ? 200 : 400))],
    ['/v2/health/ready', get('health', ({ res }) => sendEmpty(res, core.isReady() ? 200 : 400))],
    ['/v2', get('metadata', ({ res }) => sendJson(res, 200, core.serverMetadata()))],
    ['/v2/models/stats', get('statistics', ({ res }) => sendJson(res, 200, { model_stats: core.statistics() }))],
  ]);
  const refusal = modelControlRefusal(modelControl);

  return (path) => {
    const found = fixed.get(path);
    if (found) return found;
    const model = MODEL_PATH.exec(path);
    if (model) {
      const name = decode(model[1]);
      const version = model[2] === undefined ? '' : decode(model[2]);
      return modelRoute(name, version, model[3] ?? '');
    }
    const repository = REPOSITORY_PATH.exec(path);
    if (repository) {
      const [, repositoryName, modelName, action] = repository;
      return post('model-repository', async ({ res, body }) => {
        if (repositoryName !== undefined) throw unimplemented(`'repository_name' specification is not supported: got '${decode(repositoryName)}'; use /v2/repository/…`);
        if (modelName !== undefined && refusal) throw refusal;
        const json = await optionalJson(await body(), 'repository request');
        if (modelName === undefined) return sendJson(res, 200, repositoryIndex(core, json));
        if (action === 'load') await core.loadModel(loadTarget(decode(modelName), json));
        else await core.unloadModel(unloadTarget(decode(modelName), json));
        sendEmpty(res, 200);
      });
    }
    return undefined;
  };

  function modelRoute(name: string, version: string, kind: string): Route {
    switch (kind) {
      case '':
        return get('metadata', ({ res }) => sendJson(res, 200, core.modelMetadata(name, version)));
      case 'ready':
        return get('health', ({ res }) =>
          core.modelReady(name, version)
            ? sendEmpty(res, 200)
            : sendError(res, 400, `model '${name}'${version ? ` version ${version}` : ''} is not ready; see POST /v2/repository/index for the reason`),
        );
      case 'config':
        return get('model-config', ({ res }) => sendJson(res, 200, core.modelConfig(name, version)));
      case 'stats':
        return get('statistics', ({ res }) => sendJson(res, 200, { model_stats: core.statistics(name, version) }));
      case 'infer':
        return post('inference', async ({ req, res, body }) => {
          if (core.isDecoupled(name, version)) {
            throw unimplemented(`HTTP end point doesn't support models with decoupled transaction policy: model '${name}' is decoupled; use /generate_stream or gRPC ModelStreamInfer`);
          }
          const header = req.headers[INFERENCE_HEADER_CONTENT_LENGTH];
          const parsed = parseInferRequest(await body(), Array.isArray(header) ? header[0] : header, name, version);
          // A client that goes away frees its place in the queue.
          const gone = new AbortController();
          res.once('close', () => {
            if (!res.writableEnded) gone.abort();
          });
          const { body: out, headerLength } = encodeInferResponse(await core.infer(parsed.request, gone.signal), parsed.binaryOutput);
          if (headerLength === undefined) sendBody(res, 200, out, { 'content-type': 'application/json' });
          else sendBody(res, 200, out, { 'content-type': 'application/octet-stream', [INFERENCE_HEADER_CONTENT_LENGTH]: headerLength });
        });
      default: // generate, generate_stream
        return post('inference', async ({ res, body }) => handleGenerate(core, logger, parseJson((await body()).toString('utf8'), 'generate request'), res, name, version, kind === 'generate_stream'));
    }
  }
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw invalidArgument(`malformed percent-encoding in the URL path segment '${segment}'`);
  }
}

/** An optional JSON object body: empty means `{}`. */
async function optionalJson(body: Buffer, what: string): Promise<Record<string, unknown>> {
  if (body.length === 0) return {};
  return expectObject(parseJson(body.toString('utf8'), what), `the ${what}`);
}

function repositoryIndex(core: InferenceCore, json: Record<string, unknown>) {
  if (json.ready !== undefined && typeof json.ready !== 'boolean') throw invalidArgument(`the repository index request expects 'ready' to be a boolean, got ${jsonKind(json.ready)}`);
  // Triton leaves out an empty reason.
  return core.repositoryIndex(json.ready === true).map(({ reason, ...row }) => (reason ? { ...row, reason } : row));
}

/** Load takes no parameters here: the model is (re)loaded from the repository as it is on disk. */
function loadTarget(name: string, json: Record<string, unknown>): string {
  const parameters = json.parameters === undefined ? {} : expectObject(json.parameters, "the load request's 'parameters'");
  for (const key of Object.keys(parameters)) {
    if (key === 'config' || key.startsWith('file:')) {
      throw unimplemented(`load parameter '${key}' is not supported by the Sluice gpu-server: it loads '${name}' from the model repository as it is on disk`);
    }
    throw invalidArgument(`unknown load parameter '${key}'; Triton's are 'config' and 'file:<path>'`);
  }
  return name;
}

/** Unload accepts Triton's `unload_dependents`; there are no ensembles, so there are no dependents. */
function unloadTarget(name: string, json: Record<string, unknown>): string {
  const parameters = json.parameters === undefined ? {} : expectObject(json.parameters, "the unload request's 'parameters'");
  for (const [key, value] of Object.entries(parameters)) {
    if (key !== 'unload_dependents') throw invalidArgument(`unknown unload parameter '${key}'; expected 'unload_dependents'`);
    if (typeof value !== 'boolean') throw invalidArgument(`Unable to parse 'unload_dependents': expected a boolean, got ${jsonKind(value)}`);
  }
  return name;
}
