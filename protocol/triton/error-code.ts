/**
 * The machine-readable code of a streamed error. On ModelStreamInfer, Triton
 * reports a request's failure as text only (`error_message`), while the same
 * failure on ModelInfer carries a gRPC status. So the Sluice gpu-server also
 * sets, among the error's `infer_response.parameters`, this string parameter
 * to the name of the status the unary call would have failed with
 * (`INVALID_ARGUMENT`, `NOT_FOUND`, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
 * `INTERNAL`, …). NVIDIA's Triton sends no such parameter; a client then
 * falls back on what it knows without it (see README.md).
 */
import { status } from '@grpc/grpc-js';
import type { InferParameter, InferParameter__Output } from './messages';

export const ERROR_CODE_PARAMETER = 'sluice_error_code';

/** The parameter that names `code` on a streamed error. */
export function errorCodeParameter(code: status): Record<string, InferParameter> {
  return { [ERROR_CODE_PARAMETER]: { string_param: status[code], parameter_choice: 'string_param' } };
}

/** The gRPC status a streamed error's parameters name, or undefined when they name none (or one this library does not know). */
export function streamedErrorStatus(parameters: Record<string, InferParameter__Output> | undefined): status | undefined {
  const name = parameters?.[ERROR_CODE_PARAMETER]?.string_param;
  if (!name || !Object.hasOwn(status, name)) return undefined;
  const code = status[name as keyof typeof status];
  return typeof code === 'number' ? code : undefined;
}
