/**
 * POST …/generate and …/generate_stream, both through `core.inferStream`, so
 * they serve decoupled models (any number of responses) and ordinary ones
 * (exactly one) alike.
 *
 * - generate: the one response as JSON; a model that answers with more than
 *   one response is an error, as in Triton (use generate_stream for it).
 * - generate_stream: Server-Sent Events, `data: {…}\n\n` per response. An
 *   error before the first response is an ordinary JSON error with its HTTP
 *   status; after it, the status (200) is already sent, so the error is an
 *   event `data: {"error": "…"}` and the stream ends.
 *
 * A client that goes away (connection closed before the response ended)
 * aborts the request, which the core turns into cancelling the sequence.
 */
import type * as http from 'node:http';
import type { Logger } from '../../lib/log';
import { InferenceError, InferenceErrorCode } from '../core/errors';
import type { CoreInferRequest, CoreStreamResponse, InferenceCore } from '../core/inference-core';
import { encodeGenerateResponse, isFlagOnly, parseGenerateRequest } from './generate-codec';
import { sendJson, SSE_HEADERS, sseEvent } from './respond';
import { httpError } from './status';

export async function handleGenerate(core: InferenceCore, logger: Logger, body: unknown, res: http.ServerResponse, model: string, version: string, streaming: boolean): Promise<void> {
  const request = parseGenerateRequest(body, core.modelMetadata(model, version), version);
  const abort = new AbortController();
  let clientGone = false;
  const onClose = () => {
    if (res.writableEnded) return;
    clientGone = true;
    abort.abort(new Error('the HTTP client closed the connection'));
  };
  res.on('close', onClose);
  try {
    if (streaming) await stream(core, logger, request, res, abort);
    else await single(core, request, res, abort.signal);
  } catch (error) {
    // Nobody is left to tell: a request cancelled because its client left is not a failure.
    if (!clientGone) throw error;
  } finally {
    res.off('close', onClose);
  }
}

async function single(core: InferenceCore, request: CoreInferRequest, res: http.ServerResponse, signal: AbortSignal): Promise<void> {
  const responses: CoreStreamResponse[] = [];
  await core.inferStream(
    request,
    (r) => {
      if (!isFlagOnly(r)) responses.push(r);
    },
    signal,
  );
  if (responses.length !== 1) {
    throw new InferenceError(
      InferenceErrorCode.Internal,
      `generate expects model '${request.modelName}' to produce exactly 1 response, but it produced ${responses.length}; use generate_stream for models that produce a varying number of responses`,
    );
  }
  sendJson(res, 200, encodeGenerateResponse(responses[0]));
}

async function stream(core: InferenceCore, logger: Logger, request: CoreInferRequest, res: http.ServerResponse, abort: AbortController): Promise<void> {
  const start = () => {
    if (!res.headersSent) res.writeHead(200, SSE_HEADERS);
  };
  // An output the transport cannot encode fails the request from inside the
  // core's callback; it is kept here and reported once the core has stopped.
  let encodeError: unknown;
  let failure: unknown;
  try {
    await core.inferStream(
      request,
      (response) => {
        if (encodeError !== undefined || isFlagOnly(response) || res.destroyed) return;
        let event: string;
        try {
          event = sseEvent(encodeGenerateResponse(response));
        } catch (error) {
          encodeError = error;
          abort.abort(error);
          return;
        }
        start();
        res.write(event);
      },
      abort.signal,
    );
  } catch (error) {
    failure = error;
  }
  failure = encodeError ?? failure;
  if (failure !== undefined) {
    if (!res.headersSent) throw failure;
    const { status, message } = httpError(failure);
    if (status === 500) logger.error('generate_stream failed after its first response', { model: request.modelName, error: message });
    if (!res.destroyed) res.write(sseEvent({ error: message }));
  }
  start();
  res.end();
}
