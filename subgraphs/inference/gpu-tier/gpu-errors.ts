import type { ServiceError } from '@grpc/grpc-js';
import type { GraphQLError } from 'graphql';
import { codedError, ErrorCode } from '../../../lib/errors';
import { NoEndpointError } from './router';
import { GrpcStatus, isGrpcError } from './triton-client';

/**
 * The code of a gRPC status from the GPU tier, as Triton uses them: NOT_FOUND
 * for an unknown model, INVALID_ARGUMENT for input the model refuses (the
 * caller's to fix); every other status is the GPU tier's failure. One table
 * for unary calls and for streamed errors (whose status comes from the
 * `sluice_error_code` parameter, protocol/triton/error-code.ts).
 */
const CODE_BY_STATUS: Partial<Record<GrpcStatus, ErrorCode>> = {
  [GrpcStatus.NOT_FOUND]: ErrorCode.ModelNotFound,
  [GrpcStatus.INVALID_ARGUMENT]: ErrorCode.BadUserInput,
};

export function errorCodeOfStatus(status: GrpcStatus): ErrorCode {
  return CODE_BY_STATUS[status] ?? ErrorCode.GpuUnavailable;
}

/**
 * Turns a failure of a call to the GPU tier into a coded GraphQL error. The
 * gRPC status decides the code (errorCodeOfStatus); the server's
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
  return codedError(errorCodeOfStatus(error.code), describeFailure(error, model), extensions);
}

function describeFailure(error: ServiceError, model: string | undefined): string {
  switch (error.code) {
    case GrpcStatus.NOT_FOUND:
      return `model ${JSON.stringify(model)} is not served by the GPU tier: ${error.details}`;
    case GrpcStatus.INVALID_ARGUMENT:
      return `the model refused the request: ${error.details}`;
    case GrpcStatus.DEADLINE_EXCEEDED:
      return `the GPU tier did not answer in time (${error.details})`;
    default:
      return `the GPU tier could not serve the request (gRPC ${GrpcStatus[error.code]}): ${error.details}`;
  }
}
