/**
 * Conversion between the protocol's two tensor representations and the
 * core's single one (raw layout): `raw_input_contents[i]` is taken as is,
 * typed `contents` are packed into the raw little-endian layout.
 */
import { invalidArgument } from '../core/errors';
import type { CoreInferInput } from '../core/inference-core';
import { encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import type { InferTensorContents__Output as InferTensorContents, ModelInferRequest__Output as ModelInferRequest } from '../../protocol/triton/messages';

function hasContents(c: InferTensorContents | null | undefined): c is InferTensorContents {
  return !!c && Object.values(c).some((v) => Array.isArray(v) && v.length > 0);
}

/** The request's inputs with their data in raw layout; throws INVALID_ARGUMENT when the two forms are mixed or counts differ. */
export function inputsFromRequest(request: ModelInferRequest): CoreInferInput[] {
  const raw = request.raw_input_contents ?? [];
  const inputs = request.inputs ?? [];
  if (raw.length > 0) {
    if (raw.length !== inputs.length) {
      throw invalidArgument(`expected ${inputs.length} raw_input_contents (one per input), but got ${raw.length}`);
    }
    const mixed = inputs.find((i) => hasContents(i.contents));
    if (mixed) throw invalidArgument(`input '${mixed.name}' has typed contents although raw_input_contents is used; use one form for all inputs`);
    // Views into the decoded message, not copies: the hop to the instance's worker copies them once anyway.
    return inputs.map((input, i) => ({ name: input.name, datatype: input.datatype, shape: input.shape.map(Number), data: raw[i] }));
  }
  return inputs.map((input) => ({
    name: input.name,
    datatype: input.datatype,
    shape: input.shape.map(Number),
    data: hasContents(input.contents) ? packContents(input.name, input.datatype, input.contents) : Buffer.alloc(0),
  }));
}

function packContents(name: string, datatype: string, c: InferTensorContents): Buffer {
  const from = (view: ArrayBufferView) => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
  switch (datatype) {
    case 'BOOL':
      return Buffer.from((c.bool_contents ?? []).map((b) => (b ? 1 : 0)));
    case 'INT8':
      return from(Int8Array.from(c.int_contents ?? []));
    case 'INT16':
      return from(Int16Array.from(c.int_contents ?? []));
    case 'INT32':
      return from(Int32Array.from(c.int_contents ?? []));
    case 'INT64':
      return from(BigInt64Array.from((c.int64_contents ?? []).map((v) => BigInt(v))));
    case 'UINT8':
      return from(Uint8Array.from(c.uint_contents ?? []));
    case 'UINT16':
      return from(Uint16Array.from(c.uint_contents ?? []));
    case 'UINT32':
      return from(Uint32Array.from(c.uint_contents ?? []));
    case 'UINT64':
      return from(BigUint64Array.from((c.uint64_contents ?? []).map((v) => BigInt(v))));
    case 'FP32':
      return from(Float32Array.from(c.fp32_contents ?? []));
    case 'FP64':
      return from(Float64Array.from(c.fp64_contents ?? []));
    case 'BYTES':
      return encodeBytesTensor(c.bytes_contents ?? []);
    default:
      throw invalidArgument(`input '${name}' of datatype ${datatype} must be sent in raw_input_contents; typed contents have no field for it`);
  }
}
