import type { GraphQLError } from 'graphql';
import { codedError, ErrorCode } from '../../lib/errors';
import { NoEndpointError } from './router';
import { GrpcStatus, isGrpcError } from './triton-client';

/**
 * Turns a failure of a call to the GPU tier into a coded GraphQL error. The
 * gRPC status decides the code (Triton's mapping: NOT_FOUND for an unknown
 * model, UNAVAILABLE when the server or model cannot serve now); the server's
 * own message is kept, since Triton's messages say what was wrong. When no
 * endpoint could take the call, the router's own code is kept (with its
 * `retryAfter` for MODEL_NOT_READY).
 */
export function gpuError(error: unknown, model?: string): GraphQLError {
  const extensions = model ? { model } : {};
  if (error instanceof NoEndpointError) {
    return codedError(error.code, error.message, error.retryAfter === undefined ? extensions : { ...extensions, retryAfter: error.retryAfter });
  }
  if (!isGrpcError(error)) {
    return codedError(ErrorCode.GpuUnavailable, `the GPU tier returned an unusable answer: ${(error as Error).message}`, extensions);
  }
  switch (error.code) {
    case GrpcStatus.NOT_FOUND:
      return codedError(ErrorCode.ModelNotFound, `model ${JSON.stringify(model)} is not served by the GPU tier: ${error.details}`, extensions);
    case GrpcStatus.INVALID_ARGUMENT:
      return codedError(ErrorCode.BadUserInput, `the model refused the request: ${error.details}`, extensions);
    case GrpcStatus.DEADLINE_EXCEEDED:
      return codedError(ErrorCode.GpuUnavailable, `the GPU tier did not answer in time (${error.details})`, extensions);
    default:
      return codedError(ErrorCode.GpuUnavailable, `the GPU tier could not serve the request (gRPC ${GrpcStatus[error.code]}): ${error.details}`, extensions);
  }
}
