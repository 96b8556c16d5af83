/**
 * Triton's generate extension (protocol/extension_generate.md), mapped as
 * Triton's HTTP frontend maps it: every key of the request object that names
 * a model input becomes that input tensor; `id` is the request id; the
 * nested `parameters` object is mapped the same way, one level down; every
 * other key becomes a request parameter. For a vLLM-style model that means
 * `{"text_input": "…", "parameters": {"stream": false, "max_tokens": 16}}`
 * gives the tensors `text_input` and `stream` and the request parameter
 * `max_tokens`, which the model reads as a sampling parameter.
 *
 * A tensor's value is a scalar or a 1-D array; its shape comes from the
 * model metadata: fixed dimensions as declared, the innermost variable
 * dimension takes the remaining elements, other variable dimensions 1.
 *
 * A response is one JSON object: model_name, model_version, id (when set),
 * each output by name (a one-element tensor as its bare value), and the
 * model's response parameters. `triton_`-prefixed parameters belong to the
 * transport (the end of an SSE stream already says which response is final).
 */
import { invalidArgument } from '../core/errors';
import type { CoreInferInput, CoreInferRequest, CoreModelMetadata, CoreParameterValue, CoreStreamResponse } from '../core/inference-core';
import { expectObject, jsonKind } from './body';
import { parameterValue } from './infer-codec';
import { packJsonData, unpackJsonData } from './json-tensors';

export function parseGenerateRequest(body: unknown, metadata: CoreModelMetadata, version: string): CoreInferRequest {
  const json = expectObject(body, 'the generate request');
  const inputsByName = new Map(metadata.inputs.map((i) => [i.name, i]));
  const inputs: CoreInferInput[] = [];
  const parameters: Record<string, CoreParameterValue> = {};
  let id = '';

  const map = (key: string, value: unknown) => {
    const spec = inputsByName.get(key);
    if (!spec) {
      parameters[key] = parameterValue(key, value);
      return;
    }
    if (inputs.some((i) => i.name === key)) throw invalidArgument(`generate input '${key}' is given twice (at the top level and in 'parameters')`);
    const what = `generate input '${key}'`;
    const elements = Array.isArray(value) ? value : [value];
    if (elements.some(Array.isArray)) throw invalidArgument(`${what} expects a scalar or a 1-D array, got a nested array`);
    const shape = shapeFor(what, spec.shape, elements.length);
    inputs.push({ name: key, datatype: spec.datatype, shape, data: packJsonData(what, spec.datatype, shape, elements) });
  };

  for (const [key, value] of Object.entries(json)) {
    if (key === 'id' && !inputsByName.has('id')) {
      if (typeof value !== 'string') throw invalidArgument(`the generate request expects 'id' to be a string, got ${jsonKind(value)}`);
      id = value;
    } else if (key === 'parameters') {
      if (inputsByName.has('parameters')) throw invalidArgument(`Keyword 'parameters' for nested schema also given as input tensor name of model '${metadata.name}'`);
      for (const [nestedKey, nestedValue] of Object.entries(expectObject(value, "the generate request's 'parameters'"))) map(nestedKey, nestedValue);
    } else {
      map(key, value);
    }
  }
  return { modelName: metadata.name, modelVersion: version, id, inputs, parameters };
}

/** Triton's two-pass shape fill for a value of `count` elements (see the module comment). */
function shapeFor(what: string, declared: readonly number[], count: number): number[] {
  const shape = [...declared];
  let remaining = count;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === -1) continue;
    if (shape[i] === 0 || remaining % shape[i] !== 0) {
      throw invalidArgument(`${what} has ${count} element(s), which cannot fill its shape [${declared.join(',')}]`);
    }
    remaining /= shape[i];
  }
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] === -1) {
      shape[i] = remaining;
      remaining = 1;
    }
  }
  if (remaining !== 1) throw invalidArgument(`${what} has ${count} element(s), which cannot fill its shape [${declared.join(',')}]`);
  return shape;
}

/** A response carrying nothing but protocol flags (an empty final response): not shown to generate clients. */
export function isFlagOnly(response: CoreStreamResponse): boolean {
  return response.outputs.length === 0 && Object.keys(response.parameters).every((k) => k.startsWith('triton_'));
}

export function encodeGenerateResponse(response: CoreStreamResponse): Record<string, unknown> {
  const json: Record<string, unknown> = { model_name: response.modelName, model_version: response.modelVersion };
  if (response.id) json.id = response.id;
  for (const t of response.outputs) {
    const values = unpackJsonData(t);
    json[t.name] = values.length === 1 ? values[0] : values;
  }
  for (const [key, value] of Object.entries(response.parameters)) {
    if (!key.startsWith('triton_')) json[key] = value;
  }
  return json;
}
