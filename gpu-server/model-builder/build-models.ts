/**
 * Writes the model files of the repository that are built, not committed:
 * `sluice-embed/<version>/model.onnx`, the graph of the text-embedding model
 * (below), and the causal LM of `sluice-chat` and `sluice-chat-batch`
 * (model.onnx, tokenizer.json, config.json; see build-causal-lm.ts). Deterministic (seeded PRNG, no download): the same parameters give
 * the same bytes. Idempotent: a file whose recorded build fingerprint matches
 * is left alone. Writes go to a temporary file renamed into place, so
 * concurrent builds (global test setup + a test) never see half a file.
 *
 *   npx tsx gpu-server/model-builder/build-models.ts [repository]
 *
 * The graph, for token ids X [N,T] (int64) and mask M [N,T] (float):
 *   w      = M * Gather(token_weight, Min(X, V-1))     per-token weight [N,T]
 *   E      = Gather(table, Mod(X, B))                  [N,T,D], ids hashed into B buckets
 *   mean   = ReduceSum(E * w[..., None], 1) / max(ReduceSum(w, 1), ε)
 *   output = mean / sqrt(max(ReduceSum(mean², 1), ε))  [N,D], unit length
 *
 * The table rows are independent Gaussian vectors, so texts that share
 * tokens share directions and texts that share none are near-orthogonal.
 * `token_weight` plays the part of IDF with what a BPE vocabulary offers: its
 * ids are merge ranks, and the earliest merges are the most frequent strings
 * (" the", " of", single bytes), so low ids weigh little and rarer, content
 * bearing tokens weigh fully. No training is involved; this is a lexical
 * embedding, good for "texts sharing words are closer", not for synonyms.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { buildCausalLm, CHAT_MODELS, CHAT_PARAMS } from './build-causal-lm';
import { DataType, gaussian, int64Tensor, intAttr, node, prng, scalarFloat, scalarInt64, valueInfo, floatTensor, writeAtomically } from './onnx-graph';

/** Parameters of the sluice-embed graph; changing any of them rebuilds it. */
export const EMBED_PARAMS = {
  model: 'sluice-embed',
  version: '1',
  /** Embedding width D (the `embedding` output's dims). */
  dim: 128,
  /** Hash buckets B: table size B×D×4 bytes = 7.7 MB. */
  buckets: 15000,
  /** Token ids below this get full weight… */
  vocabSize: 50257, // r50k_base
  /** …the weight ramps from `minWeight` at id ≤ rampStart to 1 at id ≥ rampEnd (log scale). */
  rampStart: 200,
  rampEnd: 5000,
  minWeight: 0.05,
  seed: 0x5eed1,
  opset: 13,
  /** Bump when the graph's structure changes. */
  graphRevision: 1,
} as const;

const FINGERPRINT_KEY = 'sluice.build';

/**
 * Builds every generated model file under `repository` that is missing or
 * stale — only for the models the repository declares (a directory with a
 * config.pbtxt), so a repository serving a subset gets no stray directories.
 */
export async function buildModels(repository: string): Promise<void> {
  const declared = (model: string) => fs.existsSync(path.join(repository, model, 'config.pbtxt'));
  const file = path.join(repository, EMBED_PARAMS.model, EMBED_PARAMS.version, 'model.onnx');
  const fingerprint = JSON.stringify(EMBED_PARAMS);
  if (declared(EMBED_PARAMS.model) && currentFingerprint(file) !== fingerprint) writeAtomically(file, buildEmbeddingModel(fingerprint));
  for (const model of CHAT_MODELS.filter(declared)) buildCausalLm(path.join(repository, model, CHAT_PARAMS.version));
}

/** The fingerprint recorded in an existing model file, or undefined if absent/unreadable. */
function currentFingerprint(file: string): string | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    const model = onnx.ModelProto.decode(fs.readFileSync(file));
    return model.metadataProps.find((p) => p.key === FINGERPRINT_KEY)?.value ?? undefined;
  } catch {
    return undefined;
  }
}

function buildEmbeddingModel(fingerprint: string): Uint8Array {
  const p = EMBED_PARAMS;
  const random = prng(p.seed);
  const table = gaussian(random, p.buckets * p.dim, 1 / Math.sqrt(p.dim));
  const weights = new Float32Array(p.vocabSize);
  const lo = Math.log(p.rampStart);
  const hi = Math.log(p.rampEnd);
  for (let id = 0; id < p.vocabSize; id++) {
    const t = (Math.log(id + 1) - lo) / (hi - lo);
    weights[id] = Math.min(1, Math.max(p.minWeight, t));
  }

  const graph = onnx.GraphProto.create({
    name: 'sluice_embed',
    initializer: [
      floatTensor('embedding_table', [p.buckets, p.dim], table),
      floatTensor('token_weight', [p.vocabSize], weights),
      scalarInt64('bucket_count', p.buckets),
      scalarInt64('max_token_id', p.vocabSize - 1),
      int64Tensor('axis_1', [1]),
      int64Tensor('axis_2', [2]),
      scalarFloat('epsilon', 1e-12),
    ],
    input: [valueInfo('input_ids', DataType.INT64, ['batch', 'tokens']), valueInfo('attention_mask', DataType.FLOAT, ['batch', 'tokens'])],
    output: [valueInfo('embedding', DataType.FLOAT, ['batch', p.dim])],
    node: [
      node('Min', ['input_ids', 'max_token_id'], ['clamped_ids']),
      node('Gather', ['token_weight', 'clamped_ids'], ['token_weights'], [intAttr('axis', 0)]),
      node('Mul', ['attention_mask', 'token_weights'], ['weights']),
      node('Mod', ['input_ids', 'bucket_count'], ['bucket_ids']),
      node('Gather', ['embedding_table', 'bucket_ids'], ['vectors'], [intAttr('axis', 0)]),
      node('Unsqueeze', ['weights', 'axis_2'], ['weights_3d']),
      node('Mul', ['vectors', 'weights_3d'], ['weighted']),
      node('ReduceSum', ['weighted', 'axis_1'], ['summed'], [intAttr('keepdims', 0)]),
      node('ReduceSum', ['weights', 'axis_1'], ['weight_total'], [intAttr('keepdims', 1)]),
      node('Max', ['weight_total', 'epsilon'], ['weight_total_safe']),
      node('Div', ['summed', 'weight_total_safe'], ['mean']),
      node('Mul', ['mean', 'mean'], ['squares']),
      node('ReduceSum', ['squares', 'axis_1'], ['square_sum'], [intAttr('keepdims', 1)]),
      node('Max', ['square_sum', 'epsilon'], ['square_sum_safe']),
      node('Sqrt', ['square_sum_safe'], ['norm']),
      node('Div', ['mean', 'norm'], ['embedding']),
    ],
  });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    producerName: 'sluice/gpu-server/model-builder/build-models.ts',
    producerVersion: String(p.graphRevision),
    opsetImport: [{ domain: '', version: p.opset }],
    graph,
    metadataProps: [{ key: FINGERPRINT_KEY, value: fingerprint }],
  });
  return onnx.ModelProto.encode(model).finish();
}

if (require.main === module) {
  const repository = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'model_repository'));
  buildModels(repository).then(
    () => console.log(`models built in ${repository}`),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
