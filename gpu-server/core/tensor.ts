/**
 * Tensors as the core sees them: a KServe datatype, a shape, and the data in
 * the raw little-endian layout of the protocol (BYTES: length-prefixed
 * elements). Transports convert typed `contents` into this form, so the core
 * has one representation to validate, batch and split.
 */
import { decodeBytesTensor, encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { ELEMENT_SIZE, type WireDatatype } from '../../protocol/triton/datatypes';

export interface Tensor {
  name: string;
  datatype: WireDatatype;
  shape: number[];
  data: Buffer;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/**
 * Concatenates same-named tensors along the first (batch) dimension. Raw
 * layouts concatenate byte-wise, BYTES included, since each element carries
 * its own length.
 */
export function concatBatch(parts: readonly Tensor[]): Tensor {
  if (parts.length === 1) return parts[0];
  const [first] = parts;
  const batch = parts.reduce((n, t) => n + t.shape[0], 0);
  return { name: first.name, datatype: first.datatype, shape: [batch, ...first.shape.slice(1)], data: Buffer.concat(parts.map((t) => t.data)) };
}

/** Splits a batched tensor back into pieces of the given batch sizes, in order. */
export function splitBatch(tensor: Tensor, sizes: readonly number[]): Tensor[] {
  const rest = tensor.shape.slice(1);
  const perSample = elementCount(rest);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (tensor.shape[0] !== total) {
    throw new Error(`output '${tensor.name}' has batch dimension ${tensor.shape[0]}, but the batch held ${total} sample(s)`);
  }
  const size = ELEMENT_SIZE[tensor.datatype];
  const pieces: Tensor[] = [];
  if (size !== undefined) {
    let offset = 0;
    for (const n of sizes) {
      const bytes = n * perSample * size;
      pieces.push({ ...tensor, shape: [n, ...rest], data: tensor.data.subarray(offset, offset + bytes) });
      offset += bytes;
    }
    return pieces;
  }
  const elements = decodeBytesTensor(tensor.data, total * perSample);
  let index = 0;
  for (const n of sizes) {
    pieces.push({ ...tensor, shape: [n, ...rest], data: encodeBytesTensor(elements.slice(index, index + n * perSample)) });
    index += n * perSample;
  }
  return pieces;
}
