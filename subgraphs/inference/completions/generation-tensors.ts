/**
 * The text-generation tensors of Triton's vLLM-backend interface (DESIGN §4),
 * for one prompt (decoupled models, through ModelStreamInfer) or a batch
 * (models with max_batch_size > 0, through ModelInfer). Optional inputs are
 * sent only when the model's config declares them, so a real vLLM or
 * TensorRT-LLM model with a subset of these inputs accepts the request.
 */
import { decodeBytesTensor, encodeBytesTensor } from '../../../protocol/triton/bytes-tensor';
import { CACHED_PROMPT_TOKENS_PARAMETER, CACHED_PROMPT_TOKENS_ROWS_PARAMETER } from '../../../protocol/triton/cached-prompt-tokens';
import type { InferInputTensor, ModelInferRequest, ModelInferResponse__Output as ModelInferResponse } from '../../../protocol/triton/messages';
import type { ModelInfo } from '../models/model-catalog';

export interface SamplingParameters {
  max_tokens: number;
  temperature: number;
  top_p: number;
  seed?: number;
  stop?: string[];
}

export interface GenerationOutput {
  text: string;
  /** Server-reported counts; null when the model does not return them. */
  inputTokens: number | null;
  outputTokens: number | null;
  /** vLLM's finish reason (stop, length, cancelled, abort…), or null when not returned. */
  finishReason: string | null;
  /** Prompt tokens the server took from its prefix cache (`sluice_cached_prompt_tokens`); null when it does not say (a real Triton). */
  cachedPromptTokens: number | null;
}

const FLAGS = ['exclude_input_in_output', 'return_num_input_tokens', 'return_num_output_tokens', 'return_finish_reason'] as const;

/**
 * A ModelInferRequest for `prompts` (one per batch row); `stream` only
 * matters to decoupled models. `priority` (priority.ts) becomes Triton's
 * `priority` request parameter; undefined sends none (the model's default).
 */
export function generationRequest(model: ModelInfo, id: string, prompts: readonly string[], sampling: readonly SamplingParameters[], stream: boolean, priority?: number): ModelInferRequest {
  const declared = new Set(model.inputs.map((t) => t.name));
  const batched = model.maxBatchSize > 0;
  const n = prompts.length;
  const shape = batched ? [n, 1] : [1];
  const inputs: InferInputTensor[] = [];
  const raw: Buffer[] = [];
  const add = (name: string, datatype: string, data: Buffer) => {
    inputs.push({ name, datatype, shape });
    raw.push(data);
  };
  const bools = (value: boolean) => Buffer.alloc(n, value ? 1 : 0);
  add('text_input', 'BYTES', encodeBytesTensor(prompts));
  if (declared.has('stream')) add('stream', 'BOOL', bools(stream));
  if (declared.has('sampling_parameters')) add('sampling_parameters', 'BYTES', encodeBytesTensor(sampling.map((s) => JSON.stringify(s))));
  for (const flag of FLAGS) if (declared.has(flag)) add(flag, 'BOOL', bools(true));
  const request: ModelInferRequest = { model_name: model.id, model_version: model.version, id, inputs, raw_input_contents: raw };
  if (priority !== undefined) request.parameters = { priority: { int64_param: priority } };
  return request;
}

/**
 * One GenerationOutput per batch row of a response. Called for every token of
 * every stream, so it allocates no closures and copies no tensor: the
 * helpers below are module functions, and the counts are read in place.
 */
export function generationOutputs(model: ModelInfo, response: ModelInferResponse, rows: number): GenerationOutput[] {
  const text = outputIndex(response, 'text_output');
  const raw = text < 0 ? undefined : response.raw_output_contents[text];
  if (text < 0 || response.outputs[text].datatype !== 'BYTES' || !raw) {
    throw new Error(`model ${model.id} answered without a BYTES "text_output" output (got: ${response.outputs.map((o) => `${o.name} ${o.datatype}`).join(', ') || 'no outputs'})`);
  }
  const texts = decodeBytesTensor(raw);
  if (texts.length !== rows) throw new Error(`model ${model.id} returned ${texts.length} text_output element(s) for ${rows} prompt(s)`);
  const inputTokens = counts(response, 'num_input_tokens', rows);
  const outputTokens = counts(response, 'num_output_tokens', rows);
  const reasons = outputIndex(response, 'finish_reason');
  const finish = reasons >= 0 && response.raw_output_contents[reasons] ? decodeBytesTensor(response.raw_output_contents[reasons]) : [];
  const cached = cachedPromptTokens(response, rows);
  return texts.map((t, i) => ({
    text: t.toString('utf8'),
    inputTokens: inputTokens[i],
    outputTokens: outputTokens[i],
    finishReason: finish[i]?.toString('utf8') ?? null,
    cachedPromptTokens: cached[i],
  }));
}

function outputIndex(response: ModelInferResponse, name: string): number {
  const { outputs } = response;
  for (let i = 0; i < outputs.length; i++) if (outputs[i].name === name) return i;
  return -1;
}

/** Each row's count from an INT32/UINT32 or INT64/UINT64 output; nulls when the output is absent or short. */
function counts(response: ModelInferResponse, name: string, rows: number): Array<number | null> {
  const index = outputIndex(response, name);
  const raw = index < 0 ? undefined : response.raw_output_contents[index];
  if (!raw || raw.length < rows * 4) return Array(rows).fill(null);
  const wide = response.outputs[index].datatype === 'INT64' || response.outputs[index].datatype === 'UINT64';
  return Array.from({ length: rows }, (_, i) => (wide ? Number(raw.readBigUInt64LE(i * 8)) : raw.readUInt32LE(i * 4)));
}

/** Each row's `sluice_cached_prompt_tokens`: the parameter itself for one row, its `_rows` list for several; nulls when absent or malformed. */
function cachedPromptTokens(response: ModelInferResponse, rows: number): Array<number | null> {
  const none = Array<null>(rows).fill(null);
  if (rows > 1) {
    const list = response.parameters?.[CACHED_PROMPT_TOKENS_ROWS_PARAMETER]?.string_param?.split(',').map(Number);
    return list?.length === rows && list.every((n) => Number.isSafeInteger(n) && n >= 0) ? list : none;
  }
  const value = Number(response.parameters?.[CACHED_PROMPT_TOKENS_PARAMETER]?.int64_param);
  return Number.isSafeInteger(value) && value >= 0 ? [value] : none;
}
