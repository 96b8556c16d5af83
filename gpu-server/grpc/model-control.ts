/**
 * `--model-control-mode` on the gRPC port: outside `explicit`,
 * RepositoryModelLoad and RepositoryModelUnload answer Triton's UNAVAILABLE
 * refusal instead of reaching the core.
 */
import type { GRPCInferenceServiceHandlers } from '../../protocol/triton/messages';
import { modelControlRefusal, type ModelControlMode } from '../repository/model-control';
import { toServiceError } from './status';

export function withModelControl(handlers: GRPCInferenceServiceHandlers, mode: ModelControlMode): GRPCInferenceServiceHandlers {
  const refusal = modelControlRefusal(mode);
  if (!refusal) return handlers;
  const error = toServiceError(refusal);
  return {
    ...handlers,
    RepositoryModelLoad: (_call, callback) => callback(error, null),
    RepositoryModelUnload: (_call, callback) => callback(error, null),
  };
}
