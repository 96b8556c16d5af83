/**
 * Tensor datatypes: the KServe names used on the wire ("FP32", "BYTES") and
 * the config.pbtxt names (TYPE_FP32, TYPE_STRING), with element sizes.
 */
export type WireDatatype = 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64' | 'FP16' | 'FP32' | 'FP64' | 'BF16' | 'BYTES';

const CONFIG_TO_WIRE: Record<string, WireDatatype> = {
  TYPE_BOOL: 'BOOL',
  TYPE_UINT8: 'UINT8',
  TYPE_UINT16: 'UINT16',
  TYPE_UINT32: 'UINT32',
  TYPE_UINT64: 'UINT64',
  TYPE_INT8: 'INT8',
  TYPE_INT16: 'INT16',
  TYPE_INT32: 'INT32',
  TYPE_INT64: 'INT64',
  TYPE_FP16: 'FP16',
  TYPE_FP32: 'FP32',
  TYPE_FP64: 'FP64',
  TYPE_BF16: 'BF16',
  TYPE_STRING: 'BYTES',
};

/** Bytes per element of fixed-size datatypes; BYTES is variable (undefined). */
export const ELEMENT_SIZE: Record<WireDatatype, number | undefined> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
  BF16: 2,
  BYTES: undefined,
};

/** `TYPE_FP32` → `FP32`, `TYPE_STRING` → `BYTES`; undefined for TYPE_INVALID or unknown names. */
export function wireDatatype(configType: string): WireDatatype | undefined {
  return CONFIG_TO_WIRE[configType];
}

export function isWireDatatype(name: string): name is WireDatatype {
  return Object.hasOwn(ELEMENT_SIZE, name);
}
