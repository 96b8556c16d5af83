import * as fs from 'node:fs';
import * as path from 'node:path';
import { modelConfigSchema, parseModelConfig } from './model-config';
import { parseTextFormat, parseTextProto, PbtxtError } from './pbtxt';

const parse = (text: string) => parseTextProto(text, modelConfigSchema(), 'config.pbtxt');

function errorOf(fn: () => unknown): PbtxtError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PbtxtError) return error;
    throw error;
  }
  throw new Error('expected a PbtxtError, but nothing was thrown');
}

describe('protobuf text format: syntax', () => {
  it('parses fields, nested messages, lists, comments and separators', () => {
    const tree = parseTextFormat(`
      # a comment
      a: 1, b: "x";  c { d: ENUM_X }  # trailing comment
      e: [1, 2, 3]
      f < g: -2.5e3 >
      h [ { i: true }, { i: false } ]
    `);
    expect(tree.map((f) => f.name)).toEqual(['a', 'b', 'c', 'e', 'f', 'h']);
    expect(tree[2].value).toMatchObject({ kind: 'message', fields: [{ name: 'd', value: { kind: 'identifier', text: 'ENUM_X' } }] });
    expect(tree[3].value).toMatchObject({ kind: 'list', items: [{ text: '1' }, { text: '2' }, { text: '3' }] });
    expect(tree[4].value).toMatchObject({ kind: 'message', fields: [{ name: 'g', value: { kind: 'number', text: '-2.5e3' } }] });
    expect(tree[0]).toMatchObject({ line: 3, column: 7 });
  });

  it('decodes string escapes and concatenates adjacent literals', () => {
    const tree = parseTextFormat(String.raw`s: "a\n\t\"q\" \x41\101\u00e9" 'single\'s' "tail"`);
    expect(tree[0].value).toEqual({ kind: 'string', value: 'a\n\t"q" AAé' + "single's" + 'tail', line: 1, column: 4 });
  });

  it('decodes octal/hex escapes as UTF-8 bytes', () => {
    const tree = parseTextFormat(String.raw`s: "\303\251\xc3\xa9"`);
    expect(tree[0].value).toMatchObject({ value: 'éé' });
  });

  it('reports syntax errors with line and column', () => {
    expect(errorOf(() => parseTextFormat('a: 1\nb: "open\n')).message).toBe(`<text>:2:4: string starting here is not closed with " before the end of the line`);
    expect(errorOf(() => parseTextFormat('a {\n  b: 1\n')).message).toBe(`<text>:3:1: expected '}' to close the message, but reached the end of file`);
    expect(errorOf(() => parseTextFormat('a: [1 2]')).message).toBe(`<text>:1:7: expected ',' or ']' in the list opened at 1:4, but got '2'`);
    expect(errorOf(() => parseTextFormat('a 5')).message).toBe(`<text>:1:3: expected ':' or '{' after field 'a', but got '5'`);
    expect(errorOf(() => parseTextFormat('a: "x\\q"')).message).toBe(`<text>:1:6: unknown escape sequence '\\q' in string`);
    expect(errorOf(() => parseTextFormat('a: 1 @')).message).toBe(`<text>:1:6: unexpected character '@'`);
  });
});

describe('protobuf text format: ModelConfig schema', () => {
  it('parses a full Triton config into the proto JSON shape', () => {
    const config = parse(`
      name: "m"
      backend: "onnxruntime"
      max_batch_size: 8
      version_policy: { latest { num_versions: 2 } }
      input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, 3 ] reshape { shape: [3] } } ]
      output { name: "y" data_type: TYPE_INT64 dims: 4 dims: 5 }
      output { name: "z" data_type: TYPE_STRING dims: [1] }
      dynamic_batching {
        preferred_batch_size: [ 4, 8 ]
        max_queue_delay_microseconds: 100
        priority_levels: 2
        default_priority_level: 1
        default_queue_policy { max_queue_size: 16 timeout_action: DELAY default_timeout_microseconds: 5000 }
        priority_queue_policy { key: 1 value: { max_queue_size: 4 } }
      }
      instance_group [ { count: 2, kind: KIND_GPU, gpus: [ 0, 1 ] }, { kind: KIND_CPU } ]
      model_transaction_policy { decoupled: True }
      parameters { key: "a" value: { string_value: "1" } }
      parameters: { key: "b" value: { string_value: "2" } }
    `);
    expect(config).toEqual({
      name: 'm',
      backend: 'onnxruntime',
      max_batch_size: 8,
      version_policy: { latest: { num_versions: 2 } },
      input: [{ name: 'x', data_type: 'TYPE_FP32', dims: [-1, 3], reshape: { shape: [3] } }],
      output: [
        { name: 'y', data_type: 'TYPE_INT64', dims: [4, 5] },
        { name: 'z', data_type: 'TYPE_STRING', dims: [1] },
      ],
      dynamic_batching: {
        preferred_batch_size: [4, 8],
        max_queue_delay_microseconds: 100,
        priority_levels: 2,
        default_priority_level: 1,
        default_queue_policy: { max_queue_size: 16, timeout_action: 'DELAY', default_timeout_microseconds: 5000 },
        priority_queue_policy: { '1': { max_queue_size: 4 } },
      },
      instance_group: [{ count: 2, kind: 'KIND_GPU', gpus: [0, 1] }, { kind: 'KIND_CPU' }],
      model_transaction_policy: { decoupled: true },
      parameters: { a: { string_value: '1' }, b: { string_value: '2' } },
    });
  });

  it('accepts enum numbers, hex integers and float specials', () => {
    expect(parse('input { name: "x" data_type: 11 dims: [0x10] }').input).toEqual([{ name: 'x', data_type: 'TYPE_FP32', dims: [16] }]);
    const cfg = parse('sequence_batching { direct { minimum_slot_utilization: 0.5f } }');
    expect(cfg.sequence_batching).toEqual({ direct: { minimum_slot_utilization: 0.5 } });
  });

  it('refuses unknown fields, wrong types, bad enums, duplicates and two oneof members', () => {
    expect(errorOf(() => parse('name: "m"\n  max_batch: 4')).message).toMatch(/^config\.pbtxt:2:3: unknown field 'max_batch' in inference\.ModelConfig; expected one of: name, platform, backend/);
    expect(errorOf(() => parse('max_batch_size: "4"')).message).toBe(`config.pbtxt:1:17: field 'max_batch_size' of inference.ModelConfig expects an integer (int32), but got string "4"`);
    expect(errorOf(() => parse('max_batch_size: 1.5')).message).toBe(`config.pbtxt:1:17: field 'max_batch_size' of inference.ModelConfig expects an integer (int32), but got '1.5'`);
    expect(errorOf(() => parse('max_batch_size: 3000000000')).message).toContain('expects a int32 in [-2147483648, 2147483647], but got 3000000000');
    expect(errorOf(() => parse('input { data_type: TYPE_FLOAT }')).message).toMatch(
      /^config\.pbtxt:1:20: field 'data_type' of inference\.ModelInput expects one of TYPE_INVALID, TYPE_BOOL, .*, but got 'TYPE_FLOAT'$/,
    );
    expect(errorOf(() => parse('name: "a"\nname: "b"')).message).toBe(`config.pbtxt:2:1: field 'name' of inference.ModelConfig is given twice (first at 1:1), but it is not repeated`);
    expect(errorOf(() => parse('dynamic_batching {}\nsequence_batching {}')).message).toBe(
      `config.pbtxt:2:1: 'sequence_batching' and 'dynamic_batching' are both set, but they belong to the same oneof 'scheduling_choice'`,
    );
    expect(errorOf(() => parse('name: ["a"]')).message).toBe(`config.pbtxt:1:7: field 'name' of inference.ModelConfig is not repeated, so it cannot take a list [ ... ]`);
    expect(errorOf(() => parse('instance_group { count: -1 gpus: [0] kind: KIND_GPU passive: maybe }')).message).toBe(
      `config.pbtxt:1:62: field 'passive' of inference.ModelInstanceGroup expects true or false, but got 'maybe'`,
    );
  });

  it('parses the committed sluice-embed config', () => {
    const file = path.join(__dirname, '..', 'model_repository', 'sluice-embed', 'config.pbtxt');
    const config = parseModelConfig(fs.readFileSync(file, 'utf8'), file);
    expect(config).toMatchObject({
      name: 'sluice-embed',
      max_batch_size: 64,
      input: [{ name: 'text', data_type: 'TYPE_STRING', dims: [1] }],
      output: [{ name: 'embedding', data_type: 'TYPE_FP32', dims: [128] }],
      dynamic_batching: {},
      instance_group: [{ kind: 'KIND_CPU', count: 1 }],
    });
    expect(config.parameters?.sluice_backend).toEqual({ string_value: 'text-embedding' });
  });
});
