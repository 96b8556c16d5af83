/** Triton's InferParameter oneof (as proto-loader decodes it) to and from the core's plain values. */
import { invalidArgument } from '../core/errors';
import type { CoreParameterValue } from '../core/inference-core';
import type { InferParameter } from '../../protocol/triton/messages';

type DecodedParameter = Partial<Record<'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param', unknown>> & { parameter_choice?: string };

/** The set member of each parameter; a parameter with none set is refused (INVALID_ARGUMENT). */
export function parametersFromProto(parameters: Record<string, InferParameter> | undefined): Record<string, CoreParameterValue> {
  const out: Record<string, CoreParameterValue> = {};
  for (const [key, raw] of Object.entries(parameters ?? {})) {
    const p = raw as DecodedParameter;
    const choice = p.parameter_choice;
    if (!choice || !(choice in p)) throw invalidArgument(`request parameter '${key}' has no value; expected one of bool_param, int64_param, string_param, double_param, uint64_param`);
    out[key] = p[choice as keyof DecodedParameter] as CoreParameterValue;
  }
  return out;
}

/** Plain values as InferParameters: booleans, integers as int64, other numbers as double, strings. */
export function parametersToProto(parameters: Record<string, CoreParameterValue>): Record<string, InferParameter> {
  const out: Record<string, InferParameter> = {};
  for (const [key, value] of Object.entries(parameters)) {
    if (typeof value === 'boolean') out[key] = { bool_param: value };
    else if (typeof value === 'string') out[key] = { string_param: value };
    else if (Number.isInteger(value)) out[key] = { int64_param: value };
    else out[key] = { double_param: value };
  }
  return out;
}
