/**
 * Loading the model configuration (protocol/triton/model-config.ts) from
 * `config.pbtxt`, checked against model_config.proto's schema. The object is
 * kept in the proto's JSON shape so that the ModelConfig RPC can return it as is.
 */
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_DIR } from '../../protocol/triton/loader';
import type { ModelConfig } from '../../protocol/triton/model-config';
import { parseTextProto } from './pbtxt';

let modelConfigType: protobuf.Type | undefined;

/** The reflected `inference.ModelConfig` type (snake_case names), loaded once. */
export function modelConfigSchema(): protobuf.Type {
  if (!modelConfigType) {
    const root = new protobuf.Root();
    root.loadSync(path.join(PROTO_DIR, 'model_config.proto'), { keepCase: true });
    root.resolveAll();
    modelConfigType = root.lookupType('inference.ModelConfig');
  }
  return modelConfigType;
}

/**
 * Parses a config.pbtxt's text into a ModelConfig with the list fields always
 * present (`input`, `output`, `instance_group`) and `max_batch_size` defaulted
 * to 0. Does not check meaning (see `validateModelConfig`).
 *
 * @throws PbtxtError with file:line:column on a syntax or schema error.
 */
export function parseModelConfig(text: string, file: string): ModelConfig {
  const raw = parseTextProto(text, modelConfigSchema(), file) as Partial<ModelConfig>;
  return {
    ...raw,
    name: raw.name ?? '',
    max_batch_size: raw.max_batch_size ?? 0,
    input: (raw.input ?? []).map((i) => ({ ...i, name: i.name ?? '', data_type: i.data_type ?? 'TYPE_INVALID', dims: i.dims ?? [] })),
    output: (raw.output ?? []).map((o) => ({ ...o, name: o.name ?? '', data_type: o.data_type ?? 'TYPE_INVALID', dims: o.dims ?? [] })),
    instance_group: raw.instance_group ?? [],
  };
}
