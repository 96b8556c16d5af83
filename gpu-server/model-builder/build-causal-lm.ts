/**
 * Writes the generation model served as `sluice-chat` and `sluice-chat-batch`:
 * a small GPT-style decoder-only transformer in the layout of Hugging Face
 * Optimum's causal-LM ONNX export (`optimum-cli export onnx --task
 * text-generation-with-past`), so our model and a user's exported model take
 * the same code path in the causal-lm backend. Three files per version
 * directory: `model.onnx`, `tokenizer.json` (see bpe-tokenizer.ts) and an
 * HF-style `config.json`.
 *
 * Graph inputs/outputs (Optimum names):
 *   input_ids int64 [batch, seq], attention_mask int64 [batch, past+seq],
 *   position_ids int64 [batch, seq], past_key_values.{i}.key|value float32
 *   [batch, heads, past, head_dim]  →  logits [batch, seq, vocab],
 *   present.{i}.key|value [batch, heads, past+seq, head_dim].
 *
 * The network: learned token and position embeddings; per layer pre-norm
 * causal multi-head self-attention over past+new keys (additive mask from
 * the causal structure and attention_mask, so padded cache slots are
 * ignored) and a GELU MLP, both residual; a final layer norm and an LM head
 * tied to the token embedding through a projection. Weights are seeded Gaussians, not trained: the text it writes is
 * fluent in nothing, but every part of the serving path (tokenizer, KV cache,
 * masks, sampling) is the real one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { buildBpeTokenizer } from './bpe-tokenizer';
import { DataType, floatAttr, floatTensor, gaussian, int64Tensor, intAttr, intsAttr, node, prng, scalarFloat, scalarInt64, valueInfo, writeAtomically } from './onnx-graph';

/** The repository models built from these parameters (the same files in each). */
export const CHAT_MODELS = ['sluice-chat', 'sluice-chat-batch'] as const;

/** Parameters of the generation model; changing any of them rebuilds it. */
export const CHAT_PARAMS = {
  version: '1',
  /** r50k_base tokens kept; the end-of-sequence token gets the next id. */
  bpeTokens: 4096,
  layers: 2,
  heads: 4,
  hidden: 128,
  intermediate: 512,
  maxPositions: 1024,
  seed: 0xc4a7,
  opset: 17,
  /** Bump when the graph's structure changes. */
  graphRevision: 4,
} as const;

/** The key under which config.json records the build (written last, so its presence means the others are complete). */
const FINGERPRINT_KEY = 'sluice_build';

/** Builds model.onnx, tokenizer.json and config.json in `versionDir` unless they are current. */
export function buildCausalLm(versionDir: string): void {
  const fingerprint = JSON.stringify(CHAT_PARAMS);
  const configFile = path.join(versionDir, 'config.json');
  const modelFile = path.join(versionDir, 'model.onnx');
  const tokenizerFile = path.join(versionDir, 'tokenizer.json');
  if (fs.existsSync(modelFile) && fs.existsSync(tokenizerFile) && recordedFingerprint(configFile) === fingerprint) return;
  const p = CHAT_PARAMS;
  const tokenizer = buildBpeTokenizer(p.bpeTokens);
  const vocabSize = p.bpeTokens + 1;
  writeAtomically(tokenizerFile, tokenizer.json);
  writeAtomically(modelFile, buildGraph(vocabSize, fingerprint));
  const config = {
    architectures: ['SluiceForCausalLM'],
    model_type: 'sluice-gpt',
    vocab_size: vocabSize,
    hidden_size: p.hidden,
    intermediate_size: p.intermediate,
    num_hidden_layers: p.layers,
    num_attention_heads: p.heads,
    num_key_value_heads: p.heads,
    head_dim: p.hidden / p.heads,
    max_position_embeddings: p.maxPositions,
    bos_token_id: tokenizer.eosTokenId,
    eos_token_id: tokenizer.eosTokenId,
    [FINGERPRINT_KEY]: fingerprint,
  };
  writeAtomically(configFile, `${JSON.stringify(config, null, 2)}\n`);
}

function recordedFingerprint(configFile: string): string | undefined {
  try {
    return (JSON.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>)[FINGERPRINT_KEY] as string | undefined;
  } catch {
    return undefined;
  }
}

function buildGraph(vocabSize: number, fingerprint: string): Uint8Array {
  const p = CHAT_PARAMS;
  const headDim = p.hidden / p.heads;
  const random = prng(p.seed);
  const initializer: onnx.ITensorProto[] = [];
  const nodes: onnx.INodeProto[] = [];
  const weight = (name: string, dims: number[], std: number) => {
    initializer.push(
      floatTensor(
        name,
        dims,
        gaussian(
          random,
          dims.reduce((a, b) => a * b, 1),
          std,
        ),
      ),
    );
    return name;
  };
  const constant = (name: string, dims: number[], value: number) => {
    initializer.push(floatTensor(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value)));
    return name;
  };
  const add = (opType: string, inputs: string[], output: string, attributes: onnx.IAttributeProto[] = []) => {
    nodes.push(node(opType, inputs, [output], attributes));
    return output;
  };
  const layerNorm = (x: string, prefix: string) =>
    add('LayerNormalization', [x, constant(`${prefix}.weight`, [p.hidden], 1), constant(`${prefix}.bias`, [p.hidden], 0)], `${prefix}.out`, [intAttr('axis', -1), floatAttr('epsilon', 1e-5)]);
  // Projections without bias (as in LLaMA): a zero bias would only add nodes to every step.
  const linear = (x: string, prefix: string, inDim: number, outDim: number, std: number) => add('MatMul', [x, weight(`${prefix}.weight`, [inDim, outDim], std)], `${prefix}.out`);

  initializer.push(
    scalarInt64('one_i', 1),
    scalarInt64('zero_i', 0),
    scalarFloat('one_f', 1),
    scalarFloat('neg_inf', -1e9),
    scalarFloat('zero_f', 0),
    scalarFloat('attn_scale', 1 / Math.sqrt(headDim)),
    scalarFloat('gelu_k', 1.702),
    scalarFloat('logit_scale', 3 / Math.sqrt(p.hidden)),
    int64Tensor('axes_0', [0]),
    int64Tensor('axes_1', [1]),
    int64Tensor('axes_1_2', [1, 2]),
    int64Tensor('heads_shape', [0, 0, p.heads, headDim]),
    int64Tensor('hidden_shape', [0, 0, p.hidden]),
  );

  // Additive mask [batch, 1, seq, past+seq]: -1e9 where the key is a padded
  // slot (attention_mask 0) or lies after the query (causal); 0 elsewhere.
  const seq = add('Gather', [add('Shape', ['input_ids'], 'ids_shape'), 'one_i'], 'seq_len', [intAttr('axis', 0)]);
  const total = add('Gather', [add('Shape', ['attention_mask'], 'mask_shape'), 'one_i'], 'total_len', [intAttr('axis', 0)]);
  const past = add('Sub', [total, seq], 'past_len');
  const queryPos = add('Unsqueeze', [add('Add', [add('Range', ['zero_i', seq, 'one_i'], 'query_range'), past], 'query_pos'), 'axes_1'], 'query_pos_col');
  const keyPos = add('Unsqueeze', [add('Range', ['zero_i', total, 'one_i'], 'key_pos'), 'axes_0'], 'key_pos_row');
  const causal = add('Where', [add('Greater', [keyPos, queryPos], 'future'), 'neg_inf', 'zero_f'], 'causal_bias');
  const keep = add('Cast', ['attention_mask'], 'mask_f', [intAttr('to', DataType.FLOAT)]);
  const padBias = add('Unsqueeze', [add('Mul', [add('Sub', ['one_f', keep], 'mask_off'), 'neg_inf'], 'pad_bias_2d'), 'axes_1_2'], 'pad_bias');
  const mask = add('Add', [padBias, causal], 'attn_bias');

  const embed = add('Gather', [weight('wte', [vocabSize, p.hidden], 1), 'input_ids'], 'tok_embed', [intAttr('axis', 0)]);
  const pos = add('Gather', [weight('wpe', [p.maxPositions, p.hidden], 0.5), 'position_ids'], 'pos_embed', [intAttr('axis', 0)]);
  let x = add('Add', [embed, pos], 'h0');
  const inputs = [
    valueInfo('input_ids', DataType.INT64, ['batch_size', 'sequence_length']),
    valueInfo('attention_mask', DataType.INT64, ['batch_size', 'past_sequence_length + sequence_length']),
    valueInfo('position_ids', DataType.INT64, ['batch_size', 'sequence_length']),
  ];
  const outputs = [valueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', vocabSize])];
  const projStd = 1 / Math.sqrt(p.hidden);
  const residualStd = projStd / Math.sqrt(2 * p.layers);
  for (let i = 0; i < p.layers; i++) {
    const l = `layers.${i}`;
    const heads = (t: string, name: string) => add('Transpose', [add('Reshape', [t, 'heads_shape'], `${l}.${name}.split`)], `${l}.${name}.heads`, [intsAttr('perm', [0, 2, 1, 3])]);
    const h = layerNorm(x, `${l}.ln_1`);
    const q = heads(linear(h, `${l}.attn.q`, p.hidden, p.hidden, projStd), 'q');
    const k = heads(linear(h, `${l}.attn.k`, p.hidden, p.hidden, projStd), 'k');
    const v = heads(linear(h, `${l}.attn.v`, p.hidden, p.hidden, projStd), 'v');
    for (const kind of ['key', 'value']) {
      inputs.push(valueInfo(`past_key_values.${i}.${kind}`, DataType.FLOAT, ['batch_size', p.heads, 'past_sequence_length', headDim]));
      outputs.push(valueInfo(`present.${i}.${kind}`, DataType.FLOAT, ['batch_size', p.heads, 'past_sequence_length + sequence_length', headDim]));
    }
    const keys = add('Concat', [`past_key_values.${i}.key`, k], `present.${i}.key`, [intAttr('axis', 2)]);
    const values = add('Concat', [`past_key_values.${i}.value`, v], `present.${i}.value`, [intAttr('axis', 2)]);
    const scores = add('MatMul', [q, add('Transpose', [keys], `${l}.keys_t`, [intsAttr('perm', [0, 1, 3, 2])])], `${l}.scores`);
    const biased = add('Add', [add('Mul', [scores, 'attn_scale'], `${l}.scaled`), mask], `${l}.biased`);
    const probs = add('Softmax', [biased], `${l}.probs`, [intAttr('axis', -1)]);
    const context = add('Reshape', [add('Transpose', [add('MatMul', [probs, values], `${l}.ctx_heads`)], `${l}.ctx_t`, [intsAttr('perm', [0, 2, 1, 3])]), 'hidden_shape'], `${l}.ctx`);
    x = add('Add', [x, linear(context, `${l}.attn.o`, p.hidden, p.hidden, residualStd)], `${l}.h_attn`);
    const up = linear(layerNorm(x, `${l}.ln_2`), `${l}.mlp.up`, p.hidden, p.intermediate, projStd);
    // GELU, sigmoid approximation: x·σ(1.702x).
    const act = add('Mul', [up, add('Sigmoid', [add('Mul', [up, 'gelu_k'], `${l}.mlp.k`)], `${l}.mlp.sig`)], `${l}.mlp.act`);
    x = add('Add', [x, linear(act, `${l}.mlp.down`, p.intermediate, p.hidden, 1 / Math.sqrt(p.intermediate) / Math.sqrt(2 * p.layers))], `${l}.h_mlp`);
  }
  // The LM head reuses the token embedding (as GPT-2's does) behind a random
  // projection, so that a token's own embedding in the residual stream does
  // not simply predict that token again; scaled for logits of std ≈ 3.
  const projected = add('MatMul', [layerNorm(x, 'ln_f'), weight('lm_head.proj', [p.hidden, p.hidden], projStd)], 'head_in');
  const head = add('Transpose', ['wte'], 'lm_head', [intsAttr('perm', [1, 0])]);
  add('Mul', [add('MatMul', [projected, head], 'logits_raw'), 'logit_scale'], 'logits');

  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'sluice/gpu-server/model-builder/build-causal-lm.ts',
    producerVersion: String(p.graphRevision),
    opsetImport: [{ domain: '', version: p.opset }],
    graph: onnx.GraphProto.create({ name: 'sluice_causal_lm', initializer, input: inputs, output: outputs, node: nodes }),
    metadataProps: [{ key: 'sluice.build', value: fingerprint }],
  });
  return onnx.ModelProto.encode(model).finish();
}
