import { decodeBytesTensor, encodeBytesTensor, MalformedBytesTensorError } from './bytes-tensor';

describe('BYTES tensor codec', () => {
  it('encodes each element as a 4-byte little-endian length then its bytes', () => {
    const buf = encodeBytesTensor(['ab', Buffer.from([0xff]), '']);
    expect([...buf]).toEqual([2, 0, 0, 0, 0x61, 0x62, 1, 0, 0, 0, 0xff, 0, 0, 0, 0]);
  });

  it('round-trips UTF-8 strings, binary data and empty elements', () => {
    const elements = ['héllo wörld', '', '日本語', String.fromCodePoint(0x1f600)];
    const decoded = decodeBytesTensor(encodeBytesTensor(elements), 4).map((b) => b.toString('utf8'));
    expect(decoded).toEqual(elements);
    const binary = Buffer.from([0, 1, 2, 255]);
    expect(decodeBytesTensor(encodeBytesTensor([binary]))[0].equals(binary)).toBe(true);
  });

  it('decodes an empty buffer as zero elements', () => {
    expect(decodeBytesTensor(Buffer.alloc(0))).toEqual([]);
    expect(decodeBytesTensor(Buffer.alloc(0), 0)).toEqual([]);
  });

  it('rejects a truncated length prefix', () => {
    const buf = Buffer.concat([encodeBytesTensor(['x']), Buffer.from([1, 0])]);
    expect(() => decodeBytesTensor(buf)).toThrow(MalformedBytesTensorError);
    expect(() => decodeBytesTensor(buf)).toThrow('BYTES element 1 expects a 4-byte length prefix at byte 5, but only 2 byte(s) remain');
  });

  it('rejects an element that runs past the end', () => {
    const buf = Buffer.from([10, 0, 0, 0, 0x61, 0x62]);
    expect(() => decodeBytesTensor(buf)).toThrow('BYTES element 0 declares 10 byte(s) at byte 0, but only 2 byte(s) remain');
  });

  it('rejects an element count that differs from the shape', () => {
    const buf = encodeBytesTensor(['a', 'b', 'c']);
    expect(() => decodeBytesTensor(buf, 2)).toThrow('BYTES tensor expects 2 element(s) for its shape, but the data holds 3');
    expect(() => decodeBytesTensor(buf, 4)).toThrow('BYTES tensor expects 4 element(s) for its shape, but the data holds 3');
  });
});
