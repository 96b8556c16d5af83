/**
 * The text-embedding backend: BYTES text in, FP32 unit vectors out. Text is
 * normalised (NFKC, lower case) and tokenized here with a BPE encoding from
 * gpt-tokenizer; the ONNX graph (see model-builder/build-models.ts) takes the token
 * ids and a mask and does the rest: embedding lookup, masked mean pooling and
 * L2 normalisation. `model.py` beside model.onnx does the same for Triton's
 * Python backend, so both servers give the same vectors.
 *
 * config.pbtxt parameters read here (all optional):
 * - `tokenizer`: the gpt-tokenizer encoding, `r50k_base` (default) or `cl100k_base`.
 * - `max_tokens`: tokens kept per text, the rest is cut off (default 256).
 * - `onnx_model_filename`: the graph file in the version directory (default `model.onnx`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { configParameter } from '../../protocol/triton/model-config';
import { instanceSessionOptions } from './session-options';
import type { ModelRunner, RunnerContext } from '../core/runner';
import type { Tensor } from '../core/tensor';

export const TEXT_EMBEDDING_RUNNER = 'text-embedding';

type Encode = (text: string) => number[];

/**
 * Loads a gpt-tokenizer encoding by name (lazily: each one is megabytes of
 * ranks). Special-token strings such as `<|endoftext|>` in user text are
 * encoded as plain text, never refused or given their special id.
 */
export function loadTokenizer(name: string): Encode {
  type Module = { encode(text: string, options?: { disallowedSpecial?: Set<string> }): number[] };
  let encoding: Module;
  switch (name) {
    case 'r50k_base':
      encoding = require('gpt-tokenizer/cjs/encoding/r50k_base') as Module;
      break;
    case 'cl100k_base':
      encoding = require('gpt-tokenizer/cjs/encoding/cl100k_base') as Module;
      break;
    default:
      throw new Error(`parameter 'tokenizer' expects r50k_base or cl100k_base, but got '${name}'`);
  }
  const plain = new Set<string>();
  return (text) => encoding.encode(text, { disallowedSpecial: plain });
}

/**
 * Characters read per kept token (model.py reads the same): 32 is longer than
 * nearly every r50k token, so the cut almost never changes the kept tokens.
 */
export const CHARS_PER_TOKEN_READ = 32;

/** The text normalisation shared with model.py: NFKC, then lower case. */
export function normalizeText(text: string): string {
  return text.normalize('NFKC').toLowerCase();
}

export async function createTextEmbeddingRunner(context: RunnerContext): Promise<ModelRunner> {
  const { config, versionDir } = context;
  const textInput = config.input[0];
  const output = config.output[0];
  if (config.input.length !== 1 || textInput.data_type !== 'TYPE_STRING') {
    throw new Error(`the ${TEXT_EMBEDDING_RUNNER} backend expects exactly one TYPE_STRING input, but the config declares ${config.input.map((i) => `${i.name}:${i.data_type}`).join(', ') || 'none'}`);
  }
  if (config.output.length !== 1 || output.data_type !== 'TYPE_FP32' || output.dims.length !== 1) {
    throw new Error(
      `the ${TEXT_EMBEDDING_RUNNER} backend expects exactly one TYPE_FP32 output with dims [D], but the config declares ${config.output.map((o) => `${o.name}:${o.data_type}[${o.dims.join(',')}]`).join(', ') || 'none'}`,
    );
  }
  const encode = loadTokenizer(configParameter(config, 'tokenizer') ?? 'r50k_base');
  const maxTokens = Number(configParameter(config, 'max_tokens') ?? 256);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new Error(`parameter 'max_tokens' expects a positive integer, but got '${configParameter(config, 'max_tokens')}'`);
  const file = path.join(versionDir, configParameter(config, 'onnx_model_filename') ?? config.default_model_filename ?? 'model.onnx');
  if (!fs.existsSync(file)) throw new Error(`model file ${file} does not exist (run: npx tsx gpu-server/model-builder/build-models.ts)`);
  const session = await ort.InferenceSession.create(file, instanceSessionOptions(context));
  for (const name of ['input_ids', 'attention_mask']) {
    if (!session.inputNames.includes(name)) throw new Error(`${file} expects graph input '${name}', but the graph has ${session.inputNames.join(', ')}`);
  }
  const dim = output.dims[0];
  const batched = config.max_batch_size > 0;

  return {
    async execute(inputs) {
      const text = inputs.get(textInput.name);
      if (!text) throw new Error(`input '${textInput.name}' is missing from the batch`);
      const n = batched ? text.shape[0] : 1;
      // Only the first max_tokens tokens count, so text far past them is never tokenized: BPE costs
      // grow steeply on long unbroken runs (32 KiB of one letter takes ~0.4 s, far more crashes the encoder).
      const texts = decodeBytesTensor(text.data, n).map((b) => normalizeText(b.toString('utf8')).slice(0, maxTokens * CHARS_PER_TOKEN_READ));
      const ids = texts.map((t) => encode(t).slice(0, maxTokens));
      const width = Math.max(1, ...ids.map((row) => row.length));
      const idData = new BigInt64Array(n * width);
      const maskData = new Float32Array(n * width);
      ids.forEach((row, r) => {
        row.forEach((id, c) => {
          idData[r * width + c] = BigInt(id);
          maskData[r * width + c] = 1;
        });
      });
      const result = await session.run({
        input_ids: new ort.Tensor('int64', idData, [n, width]),
        attention_mask: new ort.Tensor('float32', maskData, [n, width]),
      });
      const embedding = result[session.outputNames[0]];
      const values = embedding.data as Float32Array;
      if (values.length !== n * dim) throw new Error(`the graph returned ${values.length} values, expected ${n}×${dim}`);
      const out: Tensor = {
        name: output.name,
        datatype: 'FP32',
        shape: batched ? [n, dim] : [dim],
        data: Buffer.from(values.buffer, values.byteOffset, values.byteLength),
      };
      return new Map([[output.name, out]]);
    },
    async close() {
      await session.release();
    },
  };
}
