/**
 * The KServe v2 inference request and response bodies, with Triton's binary
 * tensor extension: when the `Inference-Header-Content-Length` header is
 * present, the body is that many bytes of JSON followed by the binary data of
 * every input that declares `parameters.binary_data_size`, in input order;
 * outputs asked for with `parameters.binary_data: true` (or all, with the
 * request parameter `binary_data_output: true`) come back the same way.
 * Binary data is the raw layout, so BYTES elements are length-prefixed.
 */
import { invalidArgument, unimplemented } from '../core/errors';
import type { CoreInferInput, CoreInferRequest, CoreInferResponse, CoreParameterValue } from '../core/inference-core';
import { expectObject, jsonKind, parseJson } from './body';
import { packJsonData, shapeOf, stringifyJson, unpackJsonData, wireDatatypeOf } from './json-tensors';

export const INFERENCE_HEADER_CONTENT_LENGTH = 'inference-header-content-length';

export interface ParsedInferRequest {
  request: CoreInferRequest;
  /** Whether an output goes back as binary data rather than JSON `data`. */
  binaryOutput(name: string): boolean;
}

/**
 * Parses an inference request body addressed to `model`/`version`.
 * @param headerLength the Inference-Header-Content-Length header, if sent.
 */
export function parseInferRequest(body: Buffer, headerLength: string | undefined, model: string, version: string): ParsedInferRequest {
  let jsonEnd = body.length;
  if (headerLength !== undefined) {
    const n = Number(headerLength);
    if (!Number.isSafeInteger(n) || n < 1 || n > body.length) {
      throw invalidArgument(`Inference-Header-Content-Length expects an integer from 1 to the body size ${body.length}, got '${headerLength}'`);
    }
    jsonEnd = n;
  }
  const json = expectObject(parseJson(body.subarray(0, jsonEnd).toString('utf8'), 'inference request JSON'), 'the inference request');
  let binaryOffset = jsonEnd;

  if (json.id !== undefined && typeof json.id !== 'string') throw invalidArgument(`the inference request expects 'id' to be a string, got ${jsonKind(json.id)}`);
  const { parameters, binaryDataOutput } = requestParameters(json.parameters);

  if (!Array.isArray(json.inputs)) throw invalidArgument(`the inference request expects 'inputs' to be an array of tensors, got ${json.inputs === undefined ? 'nothing' : jsonKind(json.inputs)}`);
  const inputs: CoreInferInput[] = json.inputs.map((value, index) => {
    const input = expectObject(value, `inputs[${index}]`);
    if (typeof input.name !== 'string') throw invalidArgument(`inputs[${index}] expects 'name' to be a string, got ${jsonKind(input.name)}`);
    const what = `input '${input.name}'`;
    const datatype = wireDatatypeOf(what, input.datatype);
    const shape = shapeOf(what, input.shape);
    const params = input.parameters === undefined ? {} : expectObject(input.parameters, `the parameters of ${what}`);
    if (params.shared_memory_region !== undefined) throw unimplemented(`${what} uses shared memory, which the Sluice gpu-server does not support; send JSON or binary data`);
    if (params.binary_data_size !== undefined) {
      const size = params.binary_data_size;
      if (!Number.isSafeInteger(size) || (size as number) < 0) throw invalidArgument(`${what} expects 'binary_data_size' to be a non-negative integer, got ${jsonKind(size)}`);
      if (input.data !== undefined) throw invalidArgument(`${what} has both 'data' and 'binary_data_size'; expected one of them`);
      if (headerLength === undefined) throw invalidArgument(`${what} declares binary data but the request has no Inference-Header-Content-Length header`);
      if (binaryOffset + (size as number) > body.length) {
        throw invalidArgument(`${what} declares ${size} byte(s) of binary data, but only ${body.length - binaryOffset} byte(s) remain in the body`);
      }
      const data = body.subarray(binaryOffset, binaryOffset + (size as number));
      binaryOffset += size as number;
      return { name: input.name, datatype, shape, data };
    }
    if (input.data === undefined) throw invalidArgument(`${what} has no 'data' and no 'binary_data_size' parameter; expected one of them`);
    return { name: input.name, datatype, shape, data: packJsonData(what, datatype, shape, input.data) };
  });
  if (binaryOffset !== body.length) {
    throw invalidArgument(`the request body has ${body.length - binaryOffset} byte(s) of binary data that no input declared (binary_data_size)`);
  }

  const binaryOutputs = new Map<string, boolean>();
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) throw invalidArgument(`the inference request expects 'outputs' to be an array, got ${jsonKind(json.outputs)}`);
    json.outputs.forEach((value, index) => {
      const output = expectObject(value, `outputs[${index}]`);
      if (typeof output.name !== 'string') throw invalidArgument(`outputs[${index}] expects 'name' to be a string, got ${jsonKind(output.name)}`);
      const params = output.parameters === undefined ? {} : expectObject(output.parameters, `the parameters of output '${output.name}'`);
      if (params.shared_memory_region !== undefined) throw unimplemented(`output '${output.name}' asks for shared memory, which the Sluice gpu-server does not support`);
      if (params.classification !== undefined) throw unimplemented(`output '${output.name}' asks for classification, which the Sluice gpu-server does not support`);
      if (params.binary_data !== undefined && typeof params.binary_data !== 'boolean') {
        throw invalidArgument(`output '${output.name}' expects 'binary_data' to be a boolean, got ${jsonKind(params.binary_data)}`);
      }
      binaryOutputs.set(output.name, (params.binary_data as boolean | undefined) ?? binaryDataOutput);
    });
  }

  return {
    request: {
      modelName: model,
      modelVersion: version,
      id: (json.id as string | undefined) ?? '',
      inputs,
      outputs: [...binaryOutputs.keys()],
      parameters,
    },
    binaryOutput: (name) => binaryOutputs.get(name) ?? binaryDataOutput,
  };
}

/**
 * Request-level parameters: `binary_data_output` is the transport's own;
 * `triton_`-prefixed keys are reserved, as Triton refuses them over HTTP;
 * everything else (priority, timeout, sequence_*, model parameters) goes to
 * the core, which decides what it honours.
 */
function requestParameters(value: unknown): { parameters: Record<string, CoreParameterValue>; binaryDataOutput: boolean } {
  const parameters: Record<string, CoreParameterValue> = {};
  let binaryDataOutput = false;
  if (value === undefined) return { parameters, binaryDataOutput };
  for (const [key, v] of Object.entries(expectObject(value, "the inference request's 'parameters'"))) {
    if (key.startsWith('triton_')) {
      throw invalidArgument(`parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified; got '${key}'`);
    }
    if (key === 'binary_data_output') {
      if (typeof v !== 'boolean') throw invalidArgument(`parameter 'binary_data_output' expects a boolean, got ${jsonKind(v)}`);
      binaryDataOutput = v;
      continue;
    }
    parameters[key] = parameterValue(key, v);
  }
  return { parameters, binaryDataOutput };
}

/** A JSON parameter value as a core parameter (string, number or boolean). */
export function parameterValue(key: string, value: unknown): CoreParameterValue {
  if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) return value;
  throw invalidArgument(`parameter '${key}' expects a string, number or boolean, got ${jsonKind(value)}`);
}

/** The response body, and the JSON length when binary data follows it. */
export function encodeInferResponse(response: CoreInferResponse, binaryOutput: (name: string) => boolean): { body: Buffer; headerLength?: number } {
  const binary: Buffer[] = [];
  const outputs = response.outputs.map((t) => {
    const meta = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (!binaryOutput(t.name)) return { ...meta, data: unpackJsonData(t) };
    binary.push(t.data);
    return { ...meta, parameters: { binary_data_size: t.data.length } };
  });
  const json = Buffer.from(
    stringifyJson({
      model_name: response.modelName,
      model_version: response.modelVersion,
      id: response.id || undefined,
      parameters: Object.keys(response.parameters).length > 0 ? response.parameters : undefined,
      outputs,
    }),
  );
  if (binary.length === 0) return { body: json };
  return { body: Buffer.concat([json, ...binary]), headerLength: json.length };
}
