/**
 * Temporary model repositories holding variants of sluice-embed (same graph
 * and backend, another name and config), for tests and benchmarks that need
 * several models or other batching and instance settings. The graph is copied
 * from the project repository, building it there first if needed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildModels } from '../model-builder/build-models';

export const PROJECT_REPOSITORY = path.join(__dirname, '..', 'model_repository');
const EMBED = 'sluice-embed';

export interface EmbedVariant {
  name: string;
  /** @default 64 */
  maxBatchSize?: number;
  /** The body of `dynamic_batching { … }`; undefined: no dynamic batching. @default '' */
  dynamicBatching?: string | undefined;
  /** The body of `instance_group [ … ]`. @default '{ count: 1 kind: KIND_CPU }' */
  instanceGroup?: string;
  /** `parameters` overriding sluice-embed's (e.g. tokenizer). */
  parameters?: Record<string, string>;
}

/** The config.pbtxt of a sluice-embed variant. */
export function embedVariantConfig(variant: EmbedVariant): string {
  const original = fs.readFileSync(path.join(PROJECT_REPOSITORY, EMBED, 'config.pbtxt'), 'utf8');
  const parameters = new Map<string, string>();
  for (const m of original.matchAll(/^parameters \{ key: "([^"]+)" value: \{ string_value: "([^"]*)" \} \}$/gm)) parameters.set(m[1], m[2]);
  for (const [k, v] of Object.entries(variant.parameters ?? {})) parameters.set(k, v);
  const batching = 'dynamicBatching' in variant ? variant.dynamicBatching : '';
  return [
    `name: "${variant.name}"`,
    `backend: "python"`,
    `max_batch_size: ${variant.maxBatchSize ?? 64}`,
    `input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] } ]`,
    `output [ { name: "embedding" data_type: TYPE_FP32 dims: [ 128 ] } ]`,
    batching === undefined ? '' : `dynamic_batching { ${batching} }`,
    `instance_group [ ${variant.instanceGroup ?? '{ count: 1 kind: KIND_CPU }'} ]`,
    ...[...parameters].map(([k, v]) => `parameters { key: "${k}" value: { string_value: "${v}" } }`),
    '',
  ].join('\n');
}

/** Creates a temporary repository with these variants; remove it with `fs.rmSync(dir, { recursive: true })`. */
export async function makeEmbedRepository(variants: EmbedVariant[]): Promise<string> {
  const graph = path.join(PROJECT_REPOSITORY, EMBED, '1', 'model.onnx');
  if (!fs.existsSync(graph)) await buildModels(PROJECT_REPOSITORY);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-embed-variants-'));
  for (const variant of variants) addEmbedVariant(root, variant);
  return root;
}

/** Writes one variant into `root`. */
export function addEmbedVariant(root: string, variant: EmbedVariant): void {
  fs.mkdirSync(path.join(root, variant.name, '1'), { recursive: true });
  fs.copyFileSync(path.join(PROJECT_REPOSITORY, EMBED, '1', 'model.onnx'), path.join(root, variant.name, '1', 'model.onnx'));
  fs.writeFileSync(path.join(root, variant.name, 'config.pbtxt'), embedVariantConfig(variant));
}
