/**
 * Response parameters set by a runner (e.g. the causal-lm backend's
 * `sluice_cached_prompt_tokens`). A runner reports one as an extra INT64 output
 * named `RESPONSE_PARAMETER_TENSOR_PREFIX + name` with one element per row:
 * it then crosses the worker hop and the dynamic batcher's split into
 * requests like any output, with no message or scheduler of its own, and the
 * core moves it out of the outputs into the response's parameters (only
 * outputs the config declares are ever returned as tensors).
 */
import type { CoreParameterValue } from './request-parameters';
import type { Tensor } from './tensor';

export const RESPONSE_PARAMETER_TENSOR_PREFIX = '@parameter:';

/** The tensor that reports parameter `name` with one value per row (shape as the model's outputs: [rows, 1] when batched). */
export function responseParameterTensor(name: string, values: readonly number[], batched: boolean): Tensor {
  return { name: RESPONSE_PARAMETER_TENSOR_PREFIX + name, datatype: 'INT64', shape: batched ? [values.length, 1] : [values.length], data: Buffer.from(BigInt64Array.from(values, BigInt).buffer) };
}

/**
 * The parameters carried by one request's outputs. A parameter is one int64
 * per response, so for a request of several rows (a client batching
 * prompts of different callers) it is the rows' total, and
 * `<name>_rows` (string) lists each row's value in row order, comma-separated.
 */
export function responseParameters(outputs: ReadonlyMap<string, Tensor>): Record<string, CoreParameterValue> {
  const parameters: Record<string, CoreParameterValue> = {};
  for (const [name, tensor] of outputs) {
    if (!name.startsWith(RESPONSE_PARAMETER_TENSOR_PREFIX)) continue;
    const values = Array.from(new BigInt64Array(tensor.data.buffer.slice(tensor.data.byteOffset, tensor.data.byteOffset + tensor.data.byteLength)), Number);
    const parameter = name.slice(RESPONSE_PARAMETER_TENSOR_PREFIX.length);
    parameters[parameter] = values.reduce((a, b) => a + b, 0);
    if (values.length > 1) parameters[`${parameter}_rows`] = values.join(',');
  }
  return parameters;
}
