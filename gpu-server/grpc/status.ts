/** Maps core errors onto gRPC statuses, as Triton's gRPC frontend does. */
import * as grpc from '@grpc/grpc-js';
import { asInferenceError, InferenceErrorCode } from '../core/errors';

const STATUS: Record<InferenceErrorCode, grpc.status> = {
  [InferenceErrorCode.InvalidArgument]: grpc.status.INVALID_ARGUMENT,
  [InferenceErrorCode.NotFound]: grpc.status.NOT_FOUND,
  [InferenceErrorCode.Unavailable]: grpc.status.UNAVAILABLE,
  [InferenceErrorCode.Unimplemented]: grpc.status.UNIMPLEMENTED,
  [InferenceErrorCode.ResourceExhausted]: grpc.status.RESOURCE_EXHAUSTED,
  [InferenceErrorCode.Internal]: grpc.status.INTERNAL,
};

/** The error as grpc-js sends it: always with a code and details. */
export type CoreServiceError = Partial<grpc.ServiceError> & Pick<grpc.StatusObject, 'code' | 'details'>;

export function toServiceError(error: unknown): CoreServiceError {
  const e = asInferenceError(error);
  return { code: STATUS[e.code], details: e.message, message: e.message };
}
