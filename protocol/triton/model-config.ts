/**
 * Triton's model configuration (`ModelConfig` of model_config.proto), typed
 * for the fields Sluice reads, in the proto's JSON shape (snake_case, enums
 * as names). A gpu-server parses it from config.pbtxt, which fills only the
 * fields written there, so most are optional; it returns the object as is from
 * the ModelConfig RPC, where a client reads the same fields.
 */
export type ConfigDataType =
  | 'TYPE_INVALID'
  | 'TYPE_BOOL'
  | 'TYPE_UINT8'
  | 'TYPE_UINT16'
  | 'TYPE_UINT32'
  | 'TYPE_UINT64'
  | 'TYPE_INT8'
  | 'TYPE_INT16'
  | 'TYPE_INT32'
  | 'TYPE_INT64'
  | 'TYPE_FP16'
  | 'TYPE_FP32'
  | 'TYPE_FP64'
  | 'TYPE_STRING'
  | 'TYPE_BF16';

export interface ModelTensorReshape {
  shape?: number[];
}

export interface ModelInput {
  name: string;
  data_type: ConfigDataType;
  format?: 'FORMAT_NONE' | 'FORMAT_NHWC' | 'FORMAT_NCHW';
  dims: number[];
  reshape?: ModelTensorReshape;
  is_shape_tensor?: boolean;
  allow_ragged_batch?: boolean;
  optional?: boolean;
}

export interface ModelOutput {
  name: string;
  data_type: ConfigDataType;
  dims: number[];
  reshape?: ModelTensorReshape;
  label_filename?: string;
}

export interface ModelQueuePolicy {
  timeout_action?: 'REJECT' | 'DELAY';
  default_timeout_microseconds?: number;
  allow_timeout_override?: boolean;
  max_queue_size?: number;
}

export interface ModelDynamicBatching {
  preferred_batch_size?: number[];
  max_queue_delay_microseconds?: number;
  preserve_ordering?: boolean;
  priority_levels?: number;
  default_priority_level?: number;
  default_queue_policy?: ModelQueuePolicy;
  priority_queue_policy?: Record<string, ModelQueuePolicy>;
}

export interface ModelInstanceGroup {
  name?: string;
  kind?: 'KIND_AUTO' | 'KIND_GPU' | 'KIND_CPU' | 'KIND_MODEL';
  count?: number;
  gpus?: number[];
}

export interface ModelVersionPolicy {
  latest?: { num_versions?: number };
  all?: Record<string, never>;
  specific?: { versions?: number[] };
}

export interface ModelParameter {
  string_value?: string;
}

export interface ModelConfig {
  name: string;
  platform?: string;
  backend?: string;
  runtime?: string;
  version_policy?: ModelVersionPolicy;
  max_batch_size: number;
  input: ModelInput[];
  output: ModelOutput[];
  dynamic_batching?: ModelDynamicBatching;
  sequence_batching?: Record<string, unknown>;
  ensemble_scheduling?: Record<string, unknown>;
  instance_group: ModelInstanceGroup[];
  default_model_filename?: string;
  parameters?: Record<string, ModelParameter>;
  model_transaction_policy?: { decoupled?: boolean };
  /** Every other ModelConfig field, passed through untouched. */
  [field: string]: unknown;
}

/**
 * How many execution instances the config asks for, by Triton's rule: each
 * instance group's `count` (default 1), once per GPU it lists; at least one.
 */
export function instanceCount(config: Pick<ModelConfig, 'instance_group'>): number {
  const total = config.instance_group.reduce((n, g) => n + Math.max(1, g.count ?? 1) * Math.max(1, g.gpus?.length ?? 1), 0);
  return Math.max(1, total);
}

/** The string value of a config parameter (`parameters { key: "k" value: { string_value: "v" } }`). */
export function configParameter(config: Pick<ModelConfig, 'parameters'>, key: string): string | undefined {
  return config.parameters?.[key]?.string_value;
}
