/** The JSON tensor and generate codecs on their own: conversions, shape filling, and their error messages. */
import type { CoreModelMetadata, CoreStreamResponse } from '../core/inference-core';
import { encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import type { WireDatatype } from '../../protocol/triton/datatypes';
import { encodeGenerateResponse, isFlagOnly, parseGenerateRequest } from './generate-codec';
import { packJsonData, stringifyJson, unpackJsonData } from './json-tensors';

const tensor = (name: string, datatype: WireDatatype, shape: number[], data: Buffer) => ({ name, datatype, shape, data });

describe('JSON tensor data', () => {
  it.each<[WireDatatype, unknown[]]>([
    ['BOOL', [true, false, true]],
    ['INT8', [-128, 0, 127]],
    ['INT16', [-32768, 32767, 1]],
    ['INT32', [-(2 ** 31), 2 ** 31 - 1, 0]],
    ['UINT8', [0, 255, 1]],
    ['UINT16', [0, 65535, 2]],
    ['UINT32', [0, 2 ** 32 - 1, 3]],
    ['FP32', [0.5, -1.25, 3]],
    ['FP64', [Math.PI, -Math.E, 1e-300]],
    ['BYTES', ['héllo', '', 'wörld']],
  ])('round-trips %s', (datatype, values) => {
    const data = packJsonData(`input 'x'`, datatype, [3], values);
    expect(unpackJsonData(tensor('x', datatype, [3], data))).toEqual(values);
  });

  it('writes 64-bit integers exactly, beyond 2^53', () => {
    const data = Buffer.alloc(16);
    data.writeBigInt64LE(-(2n ** 63n), 0);
    data.writeBigInt64LE(2n ** 63n - 1n, 8);
    const values = unpackJsonData(tensor('x', 'INT64', [2], data));
    expect(stringifyJson({ data: values })).toBe('{"data":[-9223372036854775808,9223372036854775807]}');
    const unsigned = Buffer.alloc(8);
    unsigned.writeBigUInt64LE(2n ** 64n - 1n, 0);
    expect(stringifyJson(unpackJsonData(tensor('x', 'UINT64', [1], unsigned)))).toBe('[18446744073709551615]');
  });

  it('packs INT64 and UINT64 from JSON integers', () => {
    const data = packJsonData(`input 'x'`, 'INT64', [2], [-5, 2 ** 40]);
    expect([data.readBigInt64LE(0), data.readBigInt64LE(8)]).toEqual([-5n, 2n ** 40n]);
  });

  it('flattens nested data in row-major order', () => {
    const data = packJsonData(
      `input 'x'`,
      'INT32',
      [2, 2],
      [
        [1, 2],
        [3, 4],
      ],
    );
    expect(unpackJsonData(tensor('x', 'INT32', [2, 2], data))).toEqual([1, 2, 3, 4]);
  });

  it.each<[string, WireDatatype, number[], unknown, string]>([
    ['an integer out of range', 'INT8', [1], [128], "input 'x' of datatype INT8 expects integers from -128 to 127 in 'data', but element 0 is number 128"],
    ['a fraction for an integer type', 'UINT32', [2], [1, 1.5], "input 'x' of datatype UINT32 expects integers in 'data', but element 1 is number 1.5"],
    ['a string for a number', 'FP32', [1], ['1'], "input 'x' of datatype FP32 expects numbers in 'data', but element 0 is string \"1\""],
    ['a number for a bool', 'BOOL', [1], [1], "input 'x' of datatype BOOL expects booleans in 'data', but element 0 is number 1"],
    ['data that is not an array', 'FP32', [1], 1, "input 'x' expects 'data' to be an array, got number 1"],
    ['FP16 as JSON', 'FP16', [1], [1], "input 'x' of datatype FP16 cannot be sent as JSON data; send it as binary data (parameters.binary_data_size)"],
  ])('refuses %s', (_what, datatype, shape, data, message) => {
    expect(() => packJsonData(`input 'x'`, datatype, shape, data)).toThrow(message);
  });

  it('refuses to write FP16 outputs as JSON', () => {
    expect(() => unpackJsonData(tensor('y', 'FP16', [1], Buffer.alloc(2)))).toThrow("output 'y' of datatype FP16 cannot be returned as JSON data; request it with parameters.binary_data: true");
  });
});

describe('generate request mapping', () => {
  const chat: CoreModelMetadata = {
    name: 'chat',
    versions: ['1'],
    platform: 'sluice',
    inputs: [
      { name: 'text_input', datatype: 'BYTES', shape: [1] },
      { name: 'stream', datatype: 'BOOL', shape: [1] },
      { name: 'grid', datatype: 'INT32', shape: [2, -1] },
      { name: 'free', datatype: 'FP32', shape: [-1, -1] },
    ],
    outputs: [],
  };

  it('maps model inputs to tensors and every other key to request parameters, at both levels', () => {
    const request = parseGenerateRequest({ text_input: 'Hi', id: 'r1', seed: 'x', parameters: { stream: true, max_tokens: 5, temperature: 0.5, stop: 'END' } }, chat, '1');
    expect(request).toMatchObject({ modelName: 'chat', modelVersion: '1', id: 'r1', parameters: { seed: 'x', max_tokens: 5, temperature: 0.5, stop: 'END' } });
    expect(request.inputs.map((i) => [i.name, i.datatype, i.shape])).toEqual([
      ['text_input', 'BYTES', [1]],
      ['stream', 'BOOL', [1]],
    ]);
    expect(request.inputs[0].data).toEqual(encodeBytesTensor(['Hi']));
    expect(request.inputs[1].data).toEqual(Buffer.from([1]));
  });

  it('fills variable dimensions as Triton does: fixed ones first, the innermost variable one takes the rest', () => {
    const request = parseGenerateRequest({ grid: [1, 2, 3, 4, 5, 6], free: [1, 2, 3] }, chat, '');
    expect(request.inputs.map((i) => i.shape)).toEqual([
      [2, 3],
      [1, 3],
    ]);
  });

  it.each([
    ['a count the fixed dimensions cannot hold', { grid: [1, 2, 3] }, "generate input 'grid' has 3 element(s), which cannot fill its shape [2,-1]"],
    ['an input given twice', { stream: true, parameters: { stream: false } }, "generate input 'stream' is given twice (at the top level and in 'parameters')"],
    ['an id that is not a string', { id: 7 }, "the generate request expects 'id' to be a string, got number 7"],
    ['a request that is not an object', ['text'], 'the generate request expects a JSON object, got an array'],
  ])('refuses %s', (_what, body, message) => {
    expect(() => parseGenerateRequest(body, chat, '')).toThrow(message);
  });

  it("refuses a model input named 'parameters', which the nested schema would shadow", () => {
    const odd = { ...chat, inputs: [{ name: 'parameters', datatype: 'BYTES' as const, shape: [1] }] };
    expect(() => parseGenerateRequest({ parameters: {} }, odd, '')).toThrow("Keyword 'parameters' for nested schema also given as input tensor name of model 'chat'");
  });
});

describe('generate response encoding', () => {
  const response = (over: Partial<CoreStreamResponse>): CoreStreamResponse => ({
    modelName: 'chat',
    modelVersion: '1',
    id: '',
    outputs: [],
    final: true,
    parameters: { triton_final_response: true },
    ...over,
  });

  it('gives each output by name, a one-element tensor as its bare value, and model parameters but not triton_ ones', () => {
    const count = Buffer.alloc(4);
    count.writeUInt32LE(7, 0);
    const json = encodeGenerateResponse(
      response({
        id: 'r1',
        outputs: [tensor('text_output', 'BYTES', [1], encodeBytesTensor(['Hello'])), tensor('num_output_tokens', 'UINT32', [1], count), tensor('pair', 'INT32', [2], Buffer.alloc(8))],
        parameters: { triton_final_response: true, cached: false },
      }),
    );
    expect(json).toEqual({ model_name: 'chat', model_version: '1', id: 'r1', text_output: 'Hello', num_output_tokens: 7, pair: [0, 0], cached: false });
  });

  it('leaves the id out when the request had none', () => {
    expect(encodeGenerateResponse(response({}))).toEqual({ model_name: 'chat', model_version: '1' });
  });

  it('recognises an empty final response as carrying flags only', () => {
    expect(isFlagOnly(response({}))).toBe(true);
    expect(isFlagOnly(response({ parameters: { triton_final_response: true, note: 'x' } }))).toBe(false);
    expect(isFlagOnly(response({ outputs: [tensor('t', 'BOOL', [1], Buffer.from([1]))] }))).toBe(false);
  });
});
