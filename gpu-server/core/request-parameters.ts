/**
 * Triton's reserved request parameters, read once per request:
 * - `priority` (integer ≥ 0; 0: the model's default level; its range is
 *   checked by the scheduler against `priority_levels`);
 * - `timeout` (integer µs ≥ 0; the request's queue timeout, honoured when the
 *   queue policy has `allow_timeout_override`);
 * - `triton_enable_empty_final_response` (bool; decoupled models only send a
 *   final response without outputs when it is true);
 * - `sequence_id`, `sequence_start`, `sequence_end`: refused, since the
 *   gpu-server has no sequence batcher (a sequence_id of 0 or "" and false
 *   flags mean "no sequence" and pass, as Triton clients send them by default).
 * Other parameters are the model's (see parameter-inputs.ts for how a
 * vLLM-style model receives them).
 */
import { invalidArgument } from './errors';

export type CoreParameterValue = boolean | number | string;

export interface ReservedParameters {
  priority: number;
  timeoutMicroseconds: number;
  enableEmptyFinalResponse: boolean;
}

const SEQUENCE_PARAMETERS = ['sequence_id', 'sequence_start', 'sequence_end'];

export function reservedParameters(model: string, parameters: Readonly<Record<string, CoreParameterValue>> = {}): ReservedParameters {
  for (const key of SEQUENCE_PARAMETERS) {
    const value = parameters[key];
    if (value === undefined || value === false || value === 0 || value === '') continue;
    throw invalidArgument(
      `parameter '${key}' is not supported for model '${model}': the Sluice gpu-server has no sequence batcher (sequence_batching), so requests are stateless; expected no sequence_* parameters, got ${key}=${JSON.stringify(value)}`,
    );
  }
  return {
    priority: nonNegativeInteger(model, parameters, 'priority', 'the priority level, 0 for the default'),
    timeoutMicroseconds: nonNegativeInteger(model, parameters, 'timeout', 'the queue timeout in microseconds'),
    enableEmptyFinalResponse: flag(model, parameters, 'triton_enable_empty_final_response'),
  };
}

function nonNegativeInteger(model: string, parameters: Readonly<Record<string, CoreParameterValue>>, key: string, meaning: string): number {
  const value = parameters[key];
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidArgument(`parameter '${key}' for model '${model}' expects a non-negative integer (${meaning}), but got ${JSON.stringify(value)}`);
  }
  return value;
}

function flag(model: string, parameters: Readonly<Record<string, CoreParameterValue>>, key: string): boolean {
  const value = parameters[key];
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw invalidArgument(`parameter '${key}' for model '${model}' expects a bool, but got ${JSON.stringify(value)}`);
  return value;
}
