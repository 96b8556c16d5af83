/**
 * Opens a causal LM in Hugging Face Optimum's ONNX export layout from a
 * version directory: `model.onnx` (with past_key_values inputs), the
 * `tokenizer.json` beside it and, when present, `config.json`. The cache
 * geometry (layers, KV heads, head size) comes from the graph's own input
 * names and shapes, with config.json filling in what the graph leaves
 * symbolic, so an exported model needs no extra description.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';

export interface CausalLmGeometry {
  layers: number;
  kvHeads: number;
  headDim: number;
  vocabSize: number;
  /** Longest sequence (prompt + generated) the position embedding allows, if known. */
  maxPositions?: number;
  /** Token ids that end a sequence. */
  eosTokenIds: number[];
  /** Graph inputs this export has beyond input_ids/attention_mask/past (Optimum variants differ). */
  hasPositionIds: boolean;
  hasUseCacheBranch: boolean;
}

export interface CausalLmFiles {
  session: ort.InferenceSession;
  tokenizer: Tokenizer;
  geometry: CausalLmGeometry;
}

type HfConfig = Partial<Record<'num_hidden_layers' | 'num_attention_heads' | 'num_key_value_heads' | 'hidden_size' | 'head_dim' | 'vocab_size' | 'max_position_embeddings' | 'n_positions', number>> & {
  eos_token_id?: number | number[];
};

const PAST = /^past_key_values\.(\d+)\.key$/;

export async function openCausalLm(versionDir: string, modelFileName: string, sessionOptions: ort.InferenceSession.SessionOptions): Promise<CausalLmFiles> {
  const modelFile = path.join(versionDir, modelFileName);
  const tokenizerFile = path.join(versionDir, 'tokenizer.json');
  const configFile = path.join(versionDir, 'config.json');
  for (const file of [modelFile, tokenizerFile]) {
    if (!fs.existsSync(file))
      throw new Error(
        `${file} does not exist (a causal-lm model needs ${modelFileName} and tokenizer.json in its version directory; for the built-in models run: npx tsx gpu-server/model-builder/build-models.ts)`,
      );
  }
  const config: HfConfig = fs.existsSync(configFile) ? (JSON.parse(fs.readFileSync(configFile, 'utf8')) as HfConfig) : {};
  let tokenizerJson: { added_tokens?: Array<{ id: number; content: string; special?: boolean }> };
  try {
    tokenizerJson = JSON.parse(fs.readFileSync(tokenizerFile, 'utf8')) as typeof tokenizerJson;
  } catch (error) {
    throw new Error(`${tokenizerFile} expects a Hugging Face tokenizer.json, but it is not valid JSON: ${(error as Error).message}`);
  }
  const tokenizer = new Tokenizer(tokenizerJson, {});

  const session = await ort.InferenceSession.create(modelFile, sessionOptions);
  try {
    return { session, tokenizer, geometry: geometryOf(session, config, tokenizerJson.added_tokens ?? [], modelFile) };
  } catch (error) {
    await session.release();
    throw error;
  }
}

function geometryOf(session: ort.InferenceSession, config: HfConfig, addedTokens: Array<{ id: number; content: string; special?: boolean }>, file: string): CausalLmGeometry {
  const names = session.inputNames;
  for (const required of ['input_ids', 'attention_mask']) {
    if (!names.includes(required)) throw new Error(`${file} expects graph input '${required}' (an Optimum text-generation-with-past export), but the graph has ${names.join(', ')}`);
  }
  if (!session.outputNames.includes('logits')) throw new Error(`${file} expects graph output 'logits', but the graph has ${session.outputNames.join(', ')}`);
  const layers = names.filter((n) => PAST.test(n)).length;
  if (layers === 0) {
    throw new Error(`${file} has no past_key_values.{i}.key inputs: export it with a KV cache (optimum-cli export onnx --task text-generation-with-past), got inputs ${names.join(', ')}`);
  }
  const past = session.inputMetadata.find((m) => m.name === 'past_key_values.0.key');
  if (!past?.isTensor || past.type !== 'float32') {
    throw new Error(`${file}: past_key_values.0.key expects a float32 tensor, but got ${past?.isTensor ? past.type : 'a non-tensor'} (only float32 exports are served)`);
  }
  const dim = (value: number | string | undefined, fallback: number | undefined, what: string): number => {
    if (typeof value === 'number' && value > 0) return value;
    if (fallback !== undefined && fallback > 0) return fallback;
    throw new Error(`${file}: cannot tell the ${what} (the graph leaves it symbolic and config.json does not give it)`);
  };
  const heads = config.num_key_value_heads ?? config.num_attention_heads;
  const kvHeads = dim(past.shape[1], heads, 'number of KV heads');
  const headDim = dim(past.shape[3], config.head_dim ?? (config.hidden_size && config.num_attention_heads ? config.hidden_size / config.num_attention_heads : undefined), 'attention head size');
  const logits = session.outputMetadata.find((m) => m.name === 'logits');
  const vocabSize = dim(logits?.isTensor ? logits.shape[2] : undefined, config.vocab_size, 'vocabulary size');

  let eosTokenIds = config.eos_token_id === undefined ? [] : Array.isArray(config.eos_token_id) ? config.eos_token_id : [config.eos_token_id];
  if (eosTokenIds.length === 0) {
    eosTokenIds = addedTokens.filter((t) => t.special && /^(<\|endoftext\|>|<\/s>|<\|eot_id\|>|<\|im_end\|>|<eos>)$/.test(t.content)).map((t) => t.id);
  }
  return {
    layers,
    kvHeads,
    headDim,
    vocabSize,
    maxPositions: config.max_position_embeddings ?? config.n_positions,
    eosTokenIds,
    hasPositionIds: names.includes('position_ids'),
    hasUseCacheBranch: names.includes('use_cache_branch'),
  };
}
