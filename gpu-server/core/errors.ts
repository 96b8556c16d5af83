/**
 * The errors of the inference core. Codes are named after the gRPC status a
 * Triton server answers with, so every transport can map them one to one
 * (grpc/status.ts, http/…); the core itself never imports a transport.
 */
export enum InferenceErrorCode {
  InvalidArgument = 'INVALID_ARGUMENT',
  NotFound = 'NOT_FOUND',
  Unavailable = 'UNAVAILABLE',
  Unimplemented = 'UNIMPLEMENTED',
  ResourceExhausted = 'RESOURCE_EXHAUSTED',
  Internal = 'INTERNAL',
}

export class InferenceError extends Error {
  override readonly name = 'InferenceError';
  constructor(
    readonly code: InferenceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const invalidArgument = (message: string) => new InferenceError(InferenceErrorCode.InvalidArgument, message);
export const notFound = (message: string) => new InferenceError(InferenceErrorCode.NotFound, message);
export const unavailable = (message: string) => new InferenceError(InferenceErrorCode.Unavailable, message);
export const unimplemented = (message: string) => new InferenceError(InferenceErrorCode.Unimplemented, message);

/** Any thrown value as an InferenceError (unknown errors become INTERNAL). */
export function asInferenceError(error: unknown): InferenceError {
  if (error instanceof InferenceError) return error;
  return new InferenceError(InferenceErrorCode.Internal, error instanceof Error ? error.message : String(error));
}
