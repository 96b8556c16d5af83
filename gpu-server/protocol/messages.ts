/**
 * Hand-written types of the Triton gRPC messages we send and receive, in the
 * shape `@grpc/proto-loader` decodes them with TRITON_PROTO_LOADER_OPTIONS
 * (snake_case names, int64 as number, enums as strings, defaults filled in).
 * Outgoing objects may omit any field; incoming ones have every field.
 */
import type { ModelConfig } from '../repository/model-config';

export type InferParameter =
  | { bool_param: boolean; parameter_choice?: 'bool_param' }
  | { int64_param: number; parameter_choice?: 'int64_param' }
  | { string_param: string; parameter_choice?: 'string_param' }
  | { double_param: number; parameter_choice?: 'double_param' }
  | { uint64_param: number; parameter_choice?: 'uint64_param' };

export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents | null;
}

export interface InferRequestedOutputTensor {
  name: string;
  parameters?: Record<string, InferParameter>;
}

export interface ModelInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, InferParameter>;
  inputs: InferInputTensor[];
  outputs?: InferRequestedOutputTensor[];
  raw_input_contents?: Buffer[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents | null;
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, InferParameter>;
  outputs: InferOutputTensor[];
  raw_output_contents: Buffer[];
}

export interface ModelStreamInferResponse {
  error_message: string;
  infer_response: ModelInferResponse | null;
}

export interface NameVersionRequest {
  name: string;
  version?: string;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ServerMetadataResponse {
  name: string;
  version: string;
  extensions: string[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ModelConfigResponse {
  config: ModelConfig;
}

export interface RepositoryIndexRequest {
  repository_name?: string;
  ready?: boolean;
}

export interface ModelIndex {
  name: string;
  version: string;
  state: string;
  reason: string;
}

export interface RepositoryIndexResponse {
  models: ModelIndex[];
}

export interface StatisticDuration {
  count: number;
  ns: number;
}

export interface InferStatistics {
  success: StatisticDuration;
  fail: StatisticDuration;
  queue: StatisticDuration;
  compute_input: StatisticDuration;
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
}

export interface InferBatchStatistics {
  batch_size: number;
  compute_input: StatisticDuration;
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
}

/** Statistics of the n-th response of decoupled requests (Triton's response_stats, keyed "0", "1", …). */
export interface InferResponseStatistics {
  compute_infer: StatisticDuration;
  compute_output: StatisticDuration;
  success: StatisticDuration;
  fail: StatisticDuration;
  empty_response: StatisticDuration;
  cancel: StatisticDuration;
}

export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: InferStatistics;
  batch_stats: InferBatchStatistics[];
  /** Only decoupled models fill it. */
  response_stats: Record<string, InferResponseStatistics>;
}

export interface ModelStatisticsResponse {
  model_stats: ModelStatistics[];
}
