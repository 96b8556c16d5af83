/**
 * Client-side helpers for the causal-lm tests and the generation benchmark:
 * the runner context of a model in the repository, request tensors in the
 * vLLM backend's names, and a sink that collects responses decoded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ResponseSink, RunnerContext } from '../../core/runner';
import { newPrefixCacheCounters } from '../../core/prefix-cache-counters';
import { responseParameters } from '../../core/response-parameters';
import type { Tensor } from '../../core/tensor';
import { CACHED_PROMPT_TOKENS_PARAMETER } from '../../../protocol/triton/cached-prompt-tokens';
import { decodeBytesTensor, encodeBytesTensor } from '../../../protocol/triton/bytes-tensor';
import { parseModelConfig } from '../../repository/model-config';

export const MODEL_REPOSITORY = path.resolve(__dirname, '..', '..', 'model_repository');

/** The runner context of `<repository>/<model>/1`, as the repository loader would make it. */
export function chatContext(model = 'sluice-chat', repository = MODEL_REPOSITORY): RunnerContext {
  const modelDir = path.join(repository, model);
  const file = path.join(modelDir, 'config.pbtxt');
  return {
    config: parseModelConfig(fs.readFileSync(file, 'utf8'), file),
    modelDir,
    versionDir: path.join(modelDir, '1'),
    version: '1',
    instance: { name: `${model}_0`, index: 0, kind: 'KIND_CPU', device: -1, executionProvider: 'cpu' },
  };
}

/** `context` with its prefix cache set to `bytes` (0: off), and counters of its own to read it by. */
export function withPrefixCache(context: RunnerContext, bytes: number): RunnerContext & { prefixCacheCounters: Float64Array } {
  const config = { ...context.config, parameters: { ...context.config.parameters, prefix_cache_bytes: { string_value: String(bytes) } } };
  return { ...context, config, prefixCacheCounters: newPrefixCacheCounters() };
}

export interface ChatRequest {
  prompt: string;
  sampling?: Record<string, unknown> | string;
  stream?: boolean;
  exclude?: boolean;
  returnCounts?: boolean;
  returnFinishReason?: boolean;
}

const bytes = (name: string, values: string[], shape: number[]): Tensor => ({ name, datatype: 'BYTES', shape, data: encodeBytesTensor(values) });
const bools = (name: string, values: boolean[], shape: number[]): Tensor => ({ name, datatype: 'BOOL', shape, data: Buffer.from(values.map(Number)) });

/** One decoupled request's inputs (no batch dimension). */
export function chatInputs(request: ChatRequest): Map<string, Tensor> {
  const tensors: Tensor[] = [bytes('text_input', [request.prompt], [1])];
  if (request.sampling !== undefined) tensors.push(bytes('sampling_parameters', [typeof request.sampling === 'string' ? request.sampling : JSON.stringify(request.sampling)], [1]));
  if (request.stream !== undefined) tensors.push(bools('stream', [request.stream], [1]));
  if (request.exclude !== undefined) tensors.push(bools('exclude_input_in_output', [request.exclude], [1]));
  if (request.returnCounts) tensors.push(bools('return_num_input_tokens', [true], [1]), bools('return_num_output_tokens', [true], [1]));
  if (request.returnFinishReason) tensors.push(bools('return_finish_reason', [true], [1]));
  return new Map(tensors.map((t) => [t.name, t]));
}

/** A batch's inputs for the batched model (leading batch dimension); every row has the same optional inputs. */
export function chatBatchInputs(requests: Array<{ prompt: string; sampling: Record<string, unknown>; exclude: boolean }>): Map<string, Tensor> {
  const n = requests.length;
  const tensors = [
    bytes(
      'text_input',
      requests.map((r) => r.prompt),
      [n, 1],
    ),
    bytes(
      'sampling_parameters',
      requests.map((r) => JSON.stringify(r.sampling)),
      [n, 1],
    ),
    bools(
      'exclude_input_in_output',
      requests.map((r) => r.exclude),
      [n, 1],
    ),
  ];
  return new Map(tensors.map((t) => [t.name, t]));
}

export interface CollectedResponse {
  text: string;
  final: boolean;
  numInputTokens?: number;
  numOutputTokens?: number;
  finishReason?: string;
  /** The `sluice_cached_prompt_tokens` response parameter. */
  cachedPromptTokens?: number;
}

/** A sink that records every response, decoded. */
export function collectingSink(onResponse?: (r: CollectedResponse) => void): ResponseSink & { responses: CollectedResponse[] } {
  const responses: CollectedResponse[] = [];
  return {
    responses,
    response(outputs, final) {
      const text = outputs.get('text_output');
      const reason = outputs.get('finish_reason');
      const count = (name: string) => {
        const t = outputs.get(name);
        return t ? t.data.readUInt32LE(0) : undefined;
      };
      const r: CollectedResponse = {
        text: text ? decodeBytesTensor(text.data)[0].toString('utf8') : '',
        final,
        numInputTokens: count('num_input_tokens'),
        numOutputTokens: count('num_output_tokens'),
        finishReason: reason ? decodeBytesTensor(reason.data)[0].toString('utf8') : undefined,
        cachedPromptTokens: responseParameters(outputs)[CACHED_PROMPT_TOKENS_PARAMETER] as number | undefined,
      };
      responses.push(r);
      onResponse?.(r);
    },
  };
}
