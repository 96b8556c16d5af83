import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GraphQLError } from 'graphql';
import { sendJson } from '../../lib/http-service';
import type { SourceRequest } from './feature';
import type { GatewayPipeline } from './pipeline';

/**
 * The source stage on an HTTP request, before Apollo Server (or the multipart
 * subscription transport) sees it: every operation of the POST body (one, or
 * a batch), or the GET's `query` and `extensions` parameters. Answers 400 (or
 * the refusal's `extensions.http.status`) and returns true on a refusal. What
 * a feature rewrote (the safelist's document in place of its id) is written
 * back where the request carries it: the body, or the URL of a GET.
 */
export function refuseHttpSource(pipeline: GatewayPipeline, req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
  if (!pipeline.sourceChecks.length) return false;
  if (req.method === 'GET' || req.method === 'HEAD') return refuseGetSource(pipeline, req, res);
  if (!Array.isArray(body)) return refuseOperationSource(pipeline, res, body);
  return body.some((request) => refuseOperationSource(pipeline, res, request));
}

function refuseOperationSource(pipeline: GatewayPipeline, res: ServerResponse, request: unknown): boolean {
  if (typeof request !== 'object' || request === null) return false;
  const refused = pipeline.requestDidStart(request as SourceRequest);
  return refused ? refuse(res, refused) : false;
}

function refuseGetSource(pipeline: GatewayPipeline, req: IncomingMessage, res: ServerResponse): boolean {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const query = url.searchParams.get('query') ?? undefined;
  let extensions: unknown;
  try {
    extensions = JSON.parse(url.searchParams.get('extensions') ?? 'null') ?? undefined;
  } catch {
    return false; // Apollo Server answers malformed parameters with its own 400
  }
  const request: SourceRequest = { query, extensions };
  const refused = pipeline.requestDidStart(request);
  if (refused) return refuse(res, refused);
  if (request.query === query && request.extensions === extensions) return false;
  if (typeof request.query === 'string') url.searchParams.set('query', request.query);
  if (request.extensions === undefined) url.searchParams.delete('extensions');
  else url.searchParams.set('extensions', JSON.stringify(request.extensions));
  // Apollo Server reads the GraphQL parameters from req.url after this stage.
  req.url = url.pathname + url.search;
  return false;
}

function refuse(res: ServerResponse, error: GraphQLError): true {
  const status = (error.extensions.http as { status?: number } | undefined)?.status ?? 400;
  sendJson(res, status, { errors: [error.toJSON()] });
  return true;
}
