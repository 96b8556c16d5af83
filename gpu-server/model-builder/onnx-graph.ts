/**
 * Small helpers for writing ONNX graphs with `onnx-proto` and seeded weights,
 * shared by the model build scripts. Everything here is deterministic: the
 * same seed gives the same bytes on every machine.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';

export const { DataType } = onnx.TensorProto;

export { prng } from '../../lib/prng';

/** `count` normal samples with standard deviation `std`, drawn from `random`. */
export function gaussian(random: () => number, count: number, std: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    // Box–Muller: two standard normals from two uniforms.
    const u = Math.max(random(), 1e-12);
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export const floatTensor = (name: string, dims: number[], data: Float32Array) =>
  onnx.TensorProto.create({ name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
export const int64Tensor = (name: string, values: number[]) =>
  onnx.TensorProto.create({ name, dims: [values.length], dataType: DataType.INT64, rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer) });
export const scalarInt64 = (name: string, value: number) => onnx.TensorProto.create({ name, dims: [], dataType: DataType.INT64, rawData: new Uint8Array(BigInt64Array.of(BigInt(value)).buffer) });
export const scalarFloat = (name: string, value: number) => onnx.TensorProto.create({ name, dims: [], dataType: DataType.FLOAT, rawData: new Uint8Array(Float32Array.of(value).buffer) });
export const node = (opType: string, inputs: string[], outputs: string[], attributes: onnx.IAttributeProto[] = []) =>
  onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: outputs[0], attribute: attributes });
export const intAttr = (name: string, i: number) => onnx.AttributeProto.create({ name, i, type: onnx.AttributeProto.AttributeType.INT });
export const floatAttr = (name: string, f: number) => onnx.AttributeProto.create({ name, f, type: onnx.AttributeProto.AttributeType.FLOAT });
export const intsAttr = (name: string, ints: number[]) => onnx.AttributeProto.create({ name, ints, type: onnx.AttributeProto.AttributeType.INTS });
export const valueInfo = (name: string, elemType: number, dims: Array<string | number>) =>
  onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });

/** Writes `bytes` to `file` through a temporary file renamed into place, so concurrent builds never see half a file. */
export function writeAtomically(file: string, bytes: Uint8Array | string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}
