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

/** One GenerationOutput per batch row of a response. */
export function generationOutputs(model: ModelInfo, response: ModelInferResponse, rows: number): GenerationOutput[] {
  const tensor = (name: string) => {
    const index = response.outputs.findIndex((o) => o.name === name);
    return index < 0 ? undefined : { meta: response.outputs[index], raw: response.raw_output_contents[index] };
  };
  const text = tensor('text_output');
  if (text?.meta.datatype !== 'BYTES' || !text.raw) {
    throw new Error(`model ${model.id} answered without a BYTES "text_output" output (got: ${response.outputs.map((o) => `${o.name} ${o.datatype}`).join(', ') || 'no outputs'})`);
  }
  const texts = decodeBytesTensor(text.raw).map((b) => b.toString('utf8'));
  if (texts.length !== rows) throw new Error(`model ${model.id} returned ${texts.length} text_output element(s) for ${rows} prompt(s)`);
  const counts = (name: string): Array<number | null> => {
    const t = tensor(name);
    if (!t?.raw || t.raw.length < rows * 4) return Array(rows).fill(null);
    const view = Buffer.from(t.raw);
    return Array.from({ length: rows }, (_, i) => (t.meta.datatype === 'INT64' || t.meta.datatype === 'UINT64' ? Number(view.readBigUInt64LE(i * 8)) : view.readUInt32LE(i * 4)));
  };
  const inputTokens = counts('num_input_tokens');
  const outputTokens = counts('num_output_tokens');
  const reasons = tensor('finish_reason');
  const finish = reasons?.raw ? decodeBytesTensor(reasons.raw).map((b) => b.toString('utf8')) : [];
  const cached = cachedPromptTokens(response, rows);
  return texts.map((t, i) => ({ text: t, inputTokens: inputTokens[i], outputTokens: outputTokens[i], finishReason: finish[i] ?? null, cachedPromptTokens: cached[i] }));
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
