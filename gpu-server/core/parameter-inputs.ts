/**
 * Request parameters as model inputs, the way Triton's vLLM backend reads
 * them: when a request carries no `sampling_parameters` tensor, the backend
 * takes its sampling parameters from the request's parameters — which is how
 * Triton's generate extension (`{"text_input": "…", "parameters":
 * {"temperature": 0, "max_tokens": 8}}`) reaches the model. For a model that
 * declares a `sampling_parameters` input, the core does the same: the
 * request's non-reserved parameters become that tensor (one JSON object per
 * batch row), and a `stream` parameter becomes the `stream` input when the
 * model declares one and the request does not set it. The model then checks
 * the values (an unknown key is refused there, naming the supported ones).
 */
import { encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import type { ModelConfig } from '../../protocol/triton/model-config';
import type { CoreInferRequest } from './infer-request';
import type { CoreParameterValue } from './request-parameters';

const RESERVED = new Set(['priority', 'timeout', 'sequence_id', 'sequence_start', 'sequence_end', 'binary_data_output']);
const isReserved = (key: string) => RESERVED.has(key) || key.startsWith('triton_') || key.startsWith('sluice_');

export function withParameterInputs(config: ModelConfig, request: CoreInferRequest): CoreInferRequest {
  const declared = new Set(config.input.map((i) => i.name));
  const given = new Set(request.inputs.map((i) => i.name));
  if (!declared.has('sampling_parameters') || given.has('sampling_parameters')) return request;
  const entries = Object.entries(request.parameters ?? {}).filter(([key]) => !isReserved(key));
  if (entries.length === 0) return request;
  const batched = config.max_batch_size > 0;
  const rows = batched ? (request.inputs.find((i) => i.name === 'text_input')?.shape[0] ?? 1) : 1;
  const shape = batched ? [rows, 1] : [1];
  const sampling: Record<string, CoreParameterValue> = {};
  let stream: boolean | undefined;
  for (const [key, value] of entries) {
    if (key === 'stream' && typeof value === 'boolean' && declared.has('stream')) stream = value;
    else sampling[key] = value;
  }
  const inputs = [...request.inputs, { name: 'sampling_parameters', datatype: 'BYTES', shape, data: encodeBytesTensor(Array(rows).fill(JSON.stringify(sampling))) }];
  if (stream !== undefined && !given.has('stream')) inputs.push({ name: 'stream', datatype: 'BOOL', shape, data: Buffer.alloc(rows, stream ? 1 : 0) });
  return { ...request, inputs };
}
