/**
 * The Triton gRPC messages Sluice sends and receives, generated from
 * grpc_service.proto into generated/ (`npm run gen:protocol`). Each message
 * has two types, as proto-loader-gen-types writes them: `X` is what a sender
 * builds (every field optional, int64 as number | string | Long), `X__Output`
 * what a receiver gets, decoded with TRITON_PROTO_LOADER_OPTIONS (every field
 * present, int64 as number, enums as names, a oneof's member named in its
 * virtual field, e.g. `parameter_choice`).
 */
export type { InferParameter, InferParameter__Output } from './generated/inference/InferParameter';
export type { InferTensorContents__Output } from './generated/inference/InferTensorContents';
export type {
  ModelInferRequest,
  ModelInferRequest__Output,
  _inference_ModelInferRequest_InferInputTensor as InferInputTensor,
} from './generated/inference/ModelInferRequest';
export type {
  ModelInferResponse,
  ModelInferResponse__Output,
  _inference_ModelInferResponse_InferOutputTensor__Output as InferOutputTensor__Output,
} from './generated/inference/ModelInferResponse';
export type { ModelStreamInferResponse, ModelStreamInferResponse__Output } from './generated/inference/ModelStreamInferResponse';
export type { ModelConfigResponse__Output } from './generated/inference/ModelConfigResponse';
export type {
  RepositoryIndexResponse__Output,
  _inference_RepositoryIndexResponse_ModelIndex__Output as ModelIndex__Output,
} from './generated/inference/RepositoryIndexResponse';
export type { ModelStatistics__Output } from './generated/inference/ModelStatistics';
export type { ModelStatisticsResponse__Output } from './generated/inference/ModelStatisticsResponse';
export type { GRPCInferenceServiceClient, GRPCInferenceServiceHandlers } from './generated/inference/GRPCInferenceService';
export type { HealthHandlers } from './generated/grpc/health/v1/Health';
