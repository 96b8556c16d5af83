/**
 * The one mapping from core errors to HTTP statuses, as Triton's HTTP
 * frontend maps its error codes (`HttpCodeFromError` in Triton's
 * http_server.cc): NOT_FOUND → 404, UNAVAILABLE → 503, UNSUPPORTED → 501,
 * INTERNAL → 500, everything else → 400. Triton's core reports a full queue
 * as UNAVAILABLE, so our RESOURCE_EXHAUSTED answers 503 too: a client that
 * retries on 503 behaves the same against both servers.
 */
import { asInferenceError, InferenceErrorCode } from '../core/errors';

export const HTTP_STATUS: Readonly<Record<InferenceErrorCode, number>> = {
  [InferenceErrorCode.InvalidArgument]: 400,
  [InferenceErrorCode.NotFound]: 404,
  [InferenceErrorCode.Unavailable]: 503,
  [InferenceErrorCode.Unimplemented]: 501,
  [InferenceErrorCode.ResourceExhausted]: 503,
  [InferenceErrorCode.Internal]: 500,
};

/** An HTTP status and the JSON body `{"error": "<message>"}` for any thrown value. */
export function httpError(error: unknown): { status: number; message: string } {
  const e = asInferenceError(error);
  return { status: HTTP_STATUS[e.code], message: e.message };
}
