/**
 * KServe v2 JSON tensor data ↔ the core's raw layout. JSON `data` is the
 * tensor's elements in row-major order, flattened or nested like the shape;
 * BYTES elements are strings (UTF-8), BOOL elements booleans, the rest
 * numbers. FP16 and BF16 have no JSON form in Triton either: they travel only
 * as binary data (the binary tensor extension).
 *
 * 64-bit integers come out exact (as bigint, written as JSON digits by
 * `stringifyJson`); going in, JSON.parse has already rounded integers beyond
 * 2^53, so send such values as binary data.
 */
import { invalidArgument } from '../core/errors';
import { elementCount, type Tensor } from '../core/tensor';
import { decodeBytesTensor, encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { ELEMENT_SIZE, isWireDatatype, type WireDatatype } from '../../protocol/triton/datatypes';
import { jsonKind } from './body';

export type JsonElement = boolean | number | string | bigint;

const INTEGER_RANGE: Partial<Record<WireDatatype, [bigint, bigint]>> = {
  INT8: [-(2n ** 7n), 2n ** 7n - 1n],
  INT16: [-(2n ** 15n), 2n ** 15n - 1n],
  INT32: [-(2n ** 31n), 2n ** 31n - 1n],
  INT64: [-(2n ** 63n), 2n ** 63n - 1n],
  UINT8: [0n, 2n ** 8n - 1n],
  UINT16: [0n, 2n ** 16n - 1n],
  UINT32: [0n, 2n ** 32n - 1n],
  UINT64: [0n, 2n ** 64n - 1n],
};

const BINARY_ONLY: ReadonlySet<WireDatatype> = new Set(['FP16', 'BF16']);

/** The datatype as a wire datatype, or INVALID_ARGUMENT listing the known ones. */
export function wireDatatypeOf(tensor: string, datatype: unknown): WireDatatype {
  if (typeof datatype !== 'string' || !isWireDatatype(datatype)) {
    throw invalidArgument(`${tensor} has invalid datatype ${jsonKind(datatype)}; expected one of ${Object.keys(ELEMENT_SIZE).join(', ')}`);
  }
  return datatype;
}

/** A JSON shape as integers ≥ 0, or INVALID_ARGUMENT saying what was got. */
export function shapeOf(tensor: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw invalidArgument(`${tensor} expects 'shape' to be an array of non-negative integers, got ${JSON.stringify(shape) ?? 'nothing'}`);
  }
  return shape as number[];
}

/**
 * Packs JSON `data` (flattened or nested) into the raw layout.
 * @param tensor how messages name the tensor, e.g. "input 'text'".
 */
export function packJsonData(tensor: string, datatype: WireDatatype, shape: readonly number[], data: unknown): Buffer {
  if (BINARY_ONLY.has(datatype)) {
    throw invalidArgument(`${tensor} of datatype ${datatype} cannot be sent as JSON data; send it as binary data (parameters.binary_data_size)`);
  }
  if (!Array.isArray(data)) throw invalidArgument(`${tensor} expects 'data' to be an array, got ${jsonKind(data)}`);
  const flat = data.flat(Infinity) as unknown[];
  const expected = elementCount(shape);
  if (flat.length !== expected) {
    throw invalidArgument(`${tensor} has ${flat.length} element(s) in 'data', but its shape [${shape.join(',')}] expects ${expected}`);
  }
  const bad = (index: number, wanted: string) => invalidArgument(`${tensor} of datatype ${datatype} expects ${wanted} in 'data', but element ${index} is ${jsonKind(flat[index])}`);

  if (datatype === 'BYTES') {
    flat.forEach((v, i) => {
      if (typeof v !== 'string') throw bad(i, 'strings');
    });
    return encodeBytesTensor(flat as string[]);
  }
  if (datatype === 'BOOL') {
    flat.forEach((v, i) => {
      if (typeof v !== 'boolean') throw bad(i, 'booleans');
    });
    return Buffer.from((flat as boolean[]).map((b) => (b ? 1 : 0)));
  }
  const size = ELEMENT_SIZE[datatype]!;
  const out = Buffer.alloc(flat.length * size);
  const range = INTEGER_RANGE[datatype];
  flat.forEach((v, i) => {
    if (range) {
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(i, 'integers');
      const n = BigInt(v);
      if (n < range[0] || n > range[1]) throw bad(i, `integers from ${range[0]} to ${range[1]}`);
      writeInteger(out, datatype, i * size, n);
    } else {
      if (typeof v !== 'number') throw bad(i, 'numbers');
      if (datatype === 'FP32') out.writeFloatLE(v, i * size);
      else out.writeDoubleLE(v, i * size);
    }
  });
  return out;
}

function writeInteger(out: Buffer, datatype: WireDatatype, offset: number, n: bigint): void {
  switch (datatype) {
    case 'INT8':
      out.writeInt8(Number(n), offset);
      break;
    case 'INT16':
      out.writeInt16LE(Number(n), offset);
      break;
    case 'INT32':
      out.writeInt32LE(Number(n), offset);
      break;
    case 'INT64':
      out.writeBigInt64LE(n, offset);
      break;
    case 'UINT8':
      out.writeUInt8(Number(n), offset);
      break;
    case 'UINT16':
      out.writeUInt16LE(Number(n), offset);
      break;
    case 'UINT32':
      out.writeUInt32LE(Number(n), offset);
      break;
    case 'UINT64':
      out.writeBigUInt64LE(n, offset);
      break;
    default:
      throw new Error(`${datatype} is not an integer datatype`);
  }
}

/** The tensor's elements, flattened, as JSON values (BYTES as UTF-8 strings). */
export function unpackJsonData(tensor: Tensor): JsonElement[] {
  const { datatype, data } = tensor;
  const count = elementCount(tensor.shape);
  if (BINARY_ONLY.has(datatype)) {
    throw invalidArgument(`output '${tensor.name}' of datatype ${datatype} cannot be returned as JSON data; request it with parameters.binary_data: true`);
  }
  if (datatype === 'BYTES') return decodeBytesTensor(data, count).map((b) => b.toString('utf8'));
  const size = ELEMENT_SIZE[datatype]!;
  const values: JsonElement[] = [];
  for (let i = 0, o = 0; i < count; i++, o += size) {
    switch (datatype) {
      case 'BOOL':
        values.push(data[o] !== 0);
        break;
      case 'INT8':
        values.push(data.readInt8(o));
        break;
      case 'INT16':
        values.push(data.readInt16LE(o));
        break;
      case 'INT32':
        values.push(data.readInt32LE(o));
        break;
      case 'INT64':
        values.push(data.readBigInt64LE(o));
        break;
      case 'UINT8':
        values.push(data.readUInt8(o));
        break;
      case 'UINT16':
        values.push(data.readUInt16LE(o));
        break;
      case 'UINT32':
        values.push(data.readUInt32LE(o));
        break;
      case 'UINT64':
        values.push(data.readBigUInt64LE(o));
        break;
      case 'FP32':
        values.push(data.readFloatLE(o));
        break;
      case 'FP64':
        values.push(data.readDoubleLE(o));
        break;
    }
  }
  return values;
}

/**
 * JSON.stringify that writes bigints as exact digits (int64/uint64 outputs
 * beyond 2^53 stay exact) and undefined members not at all.
 */
export function stringifyJson(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : stringifyJson(v))).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).filter(([, v]) => v !== undefined);
    return `{${members.map(([k, v]) => `${JSON.stringify(k)}:${stringifyJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
