/**
 * The raw encoding of BYTES tensors in Triton's protocol (KServe v2): the
 * elements of the flattened tensor one after another, each a 4-byte
 * little-endian unsigned length followed by that many bytes. No padding, no
 * terminator. This is what `raw_input_contents` / `raw_output_contents` carry
 * for a BYTES tensor, and what a Triton Python backend sees as `np.object_`.
 */

/** Thrown by {@link decodeBytesTensor} on input that is not a valid encoding. */
export class MalformedBytesTensorError extends Error {
  override readonly name = 'MalformedBytesTensorError';
}

/** Encodes elements (strings as UTF-8) into the raw BYTES layout. */
export function encodeBytesTensor(elements: ReadonlyArray<string | Uint8Array>): Buffer {
  const parts: Buffer[] = [];
  for (const element of elements) {
    const bytes = typeof element === 'string' ? Buffer.from(element, 'utf8') : Buffer.from(element.buffer, element.byteOffset, element.byteLength);
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32LE(bytes.length, 0);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/**
 * Splits a raw BYTES buffer into its elements (views into `buf`, not copies).
 *
 * @param expectedCount when given, the number of elements the tensor's shape
 *   promises; a different count is an error rather than a silent truncation.
 * @throws MalformedBytesTensorError when a length prefix is cut short, an
 *   element runs past the end of the buffer, or the count does not match.
 */
export function decodeBytesTensor(buf: Uint8Array, expectedCount?: number): Buffer[] {
  const data = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const elements: Buffer[] = [];
  let offset = 0;
  while (offset < data.length) {
    if (data.length - offset < 4) {
      throw new MalformedBytesTensorError(`BYTES element ${elements.length} expects a 4-byte length prefix at byte ${offset}, but only ${data.length - offset} byte(s) remain`);
    }
    const length = data.readUInt32LE(offset);
    offset += 4;
    if (length > data.length - offset) {
      throw new MalformedBytesTensorError(`BYTES element ${elements.length} declares ${length} byte(s) at byte ${offset - 4}, but only ${data.length - offset} byte(s) remain`);
    }
    elements.push(data.subarray(offset, offset + length));
    offset += length;
  }
  if (expectedCount !== undefined && elements.length !== expectedCount) {
    throw new MalformedBytesTensorError(`BYTES tensor expects ${expectedCount} element(s) for its shape, but the data holds ${elements.length}`);
  }
  return elements;
}
