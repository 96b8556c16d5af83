/**
 * The causal-lm backend: serves a Hugging Face causal LM exported to ONNX
 * (see model-files.ts) with the tensors of Triton's vLLM backend.
 *
 * Inputs: `text_input` BYTES, optional `stream` BOOL, `sampling_parameters`
 * BYTES (JSON, see sampling.ts), `exclude_input_in_output` BOOL,
 * `return_num_input_tokens` / `return_num_output_tokens` /
 * `return_finish_reason` BOOL. Outputs: `text_output` BYTES,
 * `num_input_tokens` / `num_output_tokens` UINT32, `finish_reason` BYTES
 * ("stop" | "length" | "cancelled").
 *
 * - Decoupled models (max_batch_size 0) are served by `stream`: with
 *   stream=true one response per new piece of text (a delta; its
 *   num_output_tokens counts the tokens since the previous response) and a
 *   final one carrying finish_reason; with stream=false one response with the
 *   whole text. As in the vLLM backend, the prompt is prepended unless
 *   `exclude_input_in_output` is true, and streaming with it explicitly false
 *   is refused. The return_* flags add their outputs.
 * - Batched models (max_batch_size > 0) are served by `execute`: every row
 *   of the batch is generated (not streamed) by the same engine, and every
 *   config output comes back, one row per request in order.
 * Both go through one GenerationEngine per instance, so a prompt with a seed
 * (or temperature 0) gives the same text alone or batched, streamed or not.
 *
 * Cancellation (aborting `stream`'s signal) ends the sequence before the next
 * forward pass; `stream` then resolves after a final response with the text
 * produced so far and finish_reason "cancelled".
 *
 * config.pbtxt parameters read here: `context_length` (longest prompt +
 * generation; default and upper bound: config.json's max_position_embeddings),
 * `onnx_model_filename` (default `model.onnx`) and `intra_op_threads` (ONNX
 * Runtime threads per instance, default 1: an instance is one execution slot
 * and its worker thread, parallelism comes from instances and batching; on
 * this 2-core machine a second intra-op thread made steps slower; 0 = ONNX
 * Runtime's default), `prefix_cache_bytes` (the instance's prefix KV cache
 * budget, prefix-cache.ts; 0 or absent: no cache) and
 * `prefix_cache_block_tokens` (its block size, default 16). `chat_template`
 * is for clients (the inference subgraph renders it); the runner takes text.
 *
 * Every response that carries `num_input_tokens` (and every batched row) also
 * carries the int64 response parameter `sluice_cached_prompt_tokens`: the prompt
 * tokens taken from the prefix cache instead of being prefilled.
 */
import { instanceSessionOptions } from '../session-options';
import { invalidArgument } from '../../core/errors';
import { RowFailures, type ResponseSink, type RunnerContext, type StreamingRunner } from '../../core/runner';
import { responseParameterTensor } from '../../core/response-parameters';
import type { Tensor } from '../../core/tensor';
import { CACHED_PROMPT_TOKENS_PARAMETER } from '../../../protocol/triton/cached-prompt-tokens';
import { decodeBytesTensor, encodeBytesTensor, MalformedBytesTensorError } from '../../../protocol/triton/bytes-tensor';
import { configParameter } from '../../../protocol/triton/model-config';
import { GenerationEngine, type FinishReason } from './engine';
import { PrefixCache } from './prefix-cache';
import { openCausalLm } from './model-files';
import { createSampler, parseSamplingParameters, type SamplingParams } from './sampling';
import { IncrementalDetokenizer, OutputText } from './text-output';

export const CAUSAL_LM_RUNNER = 'causal-lm';

/** One request's inputs, read and checked. */
interface GenerationInput {
  prompt: string;
  params: SamplingParams;
  stream: boolean;
  excludeInput: boolean;
  returnInputTokens: boolean;
  returnOutputTokens: boolean;
  returnFinishReason: boolean;
}

interface Generated {
  /** The generated text (stop strings cut), without the prompt. */
  text: string;
  /** The end of `text` not yet passed to onPiece, and the tokens behind it. */
  rest: string;
  restTokens: number;
  inputTokens: number;
  cachedPromptTokens: number;
  outputTokens: number;
  finishReason: FinishReason;
}

export async function createCausalLmRunner(context: RunnerContext): Promise<StreamingRunner> {
  const { config, versionDir } = context;
  const files = await openCausalLm(versionDir, configParameter(config, 'onnx_model_filename') ?? config.default_model_filename ?? 'model.onnx', instanceSessionOptions(context));
  const { tokenizer, session, geometry } = files;
  const configured = integerParameter(config, 'context_length', 2);
  if (configured !== undefined && geometry.maxPositions !== undefined && configured > geometry.maxPositions) {
    throw new Error(`parameter 'context_length' is ${configured}, but the model's max_position_embeddings is ${geometry.maxPositions}`);
  }
  const contextLength = configured ?? geometry.maxPositions;
  if (contextLength === undefined) throw new Error(`the model's context length is unknown: set parameter 'context_length' in config.pbtxt or max_position_embeddings in ${versionDir}/config.json`);

  const cacheBytes = integerParameter(config, 'prefix_cache_bytes', 0) ?? 0;
  const blockTokens = integerParameter(config, 'prefix_cache_block_tokens', 1) ?? 16;
  const prefixCache = cacheBytes > 0 ? new PrefixCache(blockTokens, cacheBytes, geometry, context.prefixCacheCounters) : undefined;
  const engine = new GenerationEngine(session, geometry, contextLength, prefixCache);
  const batched = config.max_batch_size > 0;
  const decode = (ids: number[]) => (ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));
  const never = new AbortController().signal;

  const encode = (text: string) => tokenizer.encode(text).ids;
  /**
   * Generates one request's text. Each piece that is certain (complete
   * characters, no undecided stop-string prefix) and not the last goes to
   * `onPiece` with the number of tokens since the previous piece; the rest
   * (the last piece, held-back text, an end-of-sequence token) is in the
   * result's `rest`/`restTokens`, for the final response.
   */
  const generate = async (input: GenerationInput, promptIds: number[], signal: AbortSignal, onPiece?: (text: string, tokens: number, cachedPromptTokens: number) => void): Promise<Generated> => {
    const detokenizer = new IncrementalDetokenizer(decode, promptIds);
    const output = new OutputText(input.params.stop);
    let seen = 0;
    let reported = 0;
    const result = await engine.generate({
      promptIds,
      maxTokens: input.params.maxTokens,
      sample: createSampler(input.params),
      stopOnEos: !input.params.ignoreEos,
      signal,
      onToken(id, last, cachedPromptTokens) {
        seen++;
        const stopped = output.append(detokenizer.push(id));
        if (onPiece && !last && !stopped) {
          const piece = output.take(false);
          if (piece !== '') {
            onPiece(piece, seen - reported, cachedPromptTokens);
            reported = seen;
          }
        }
        return stopped;
      },
    });
    output.append(detokenizer.flush());
    return {
      text: output.all(),
      rest: output.take(true),
      restTokens: result.outputTokens - reported,
      inputTokens: promptIds.length,
      cachedPromptTokens: result.cachedPromptTokens,
      outputTokens: result.outputTokens,
      finishReason: result.finishReason,
    };
  };

  const runner: StreamingRunner = {
    get activeSequences() {
      return engine.activeSequences;
    },

    async stream(inputs: ReadonlyMap<string, Tensor>, sink: ResponseSink, signal: AbortSignal) {
      const rows = batched ? (inputs.get('text_input')?.shape[0] ?? 1) : 1;
      if (rows !== 1) throw invalidArgument(`a streamed request expects one prompt, but got a batch of ${rows}`);
      const input = readInput(inputs, 0, 1);
      const outputs = (text: string, inputTokens: number, cachedPromptTokens: number, outputTokens: number, finishReason?: FinishReason) => {
        const out = new Map<string, Tensor>([['text_output', bytesTensor('text_output', [text], batched)]]);
        if (input.returnInputTokens) {
          out.set('num_input_tokens', uint32Tensor('num_input_tokens', [inputTokens], batched));
          const parameter = responseParameterTensor(CACHED_PROMPT_TOKENS_PARAMETER, [cachedPromptTokens], batched);
          out.set(parameter.name, parameter);
        }
        if (input.returnOutputTokens) out.set('num_output_tokens', uint32Tensor('num_output_tokens', [outputTokens], batched));
        if (input.returnFinishReason && finishReason) out.set('finish_reason', bytesTensor('finish_reason', [finishReason], batched));
        return out;
      };
      if (!input.stream) {
        const result = await generate(input, encode(input.prompt), signal);
        sink.response(outputs((input.excludeInput ? '' : input.prompt) + result.text, result.inputTokens, result.cachedPromptTokens, result.outputTokens, result.finishReason), true);
        return;
      }
      const promptIds = encode(input.prompt);
      const result = await generate(input, promptIds, signal, (text, tokens, cached) => sink.response(outputs(text, promptIds.length, cached, tokens), false));
      sink.response(outputs(result.rest, result.inputTokens, result.cachedPromptTokens, result.restTokens, result.finishReason), true);
    },

    async execute(inputs) {
      const text = inputs.get('text_input');
      if (!text) throw invalidArgument(`input 'text_input' is required, but the batch does not have it`);
      const rows = batched ? text.shape[0] : 1;
      // Each row is one caller's request: its bad input or too-long prompt fails that row only (RowFailures), not its batch-mates.
      const failures = new Map<number, Error>();
      const results = await Promise.all(
        Array.from({ length: rows }, async (_, row) => {
          try {
            const request = readInput(inputs, row, rows);
            if (request.stream) throw invalidArgument(`stream=true needs a decoupled model (model_transaction_policy { decoupled: true }), but '${config.name}' is not decoupled`);
            return { request, result: await generate(request, encode(request.prompt), never) };
          } catch (error) {
            failures.set(row, error as Error);
            return undefined;
          }
        }),
      );
      const out = new Map<string, Tensor>();
      for (const output of config.output) {
        const values = results.map((done) => {
          switch (output.name) {
            case 'text_output':
              return done ? (done.request.excludeInput ? '' : done.request.prompt) + done.result.text : '';
            case 'num_input_tokens':
              return done?.result.inputTokens ?? 0;
            case 'num_output_tokens':
              return done?.result.outputTokens ?? 0;
            case 'finish_reason':
              return done?.result.finishReason ?? '';
            default:
              throw new Error(`the ${CAUSAL_LM_RUNNER} backend has no output '${output.name}' (it produces text_output, num_input_tokens, num_output_tokens, finish_reason)`);
          }
        });
        const numeric = output.name === 'num_input_tokens' || output.name === 'num_output_tokens';
        out.set(output.name, numeric ? uint32Tensor(output.name, values as number[], batched) : bytesTensor(output.name, values as string[], batched));
      }
      const cached = responseParameterTensor(
        CACHED_PROMPT_TOKENS_PARAMETER,
        results.map((done) => done?.result.cachedPromptTokens ?? 0),
        batched,
      );
      out.set(cached.name, cached);
      if (failures.size > 0) throw new RowFailures(out, failures);
      return out;
    },

    async close() {
      engine.close();
      await session.release();
    },
  };
  return runner;
}

/** Reads row `row` (of `rows`) of the request inputs. */
function readInput(inputs: ReadonlyMap<string, Tensor>, row: number, rows: number): GenerationInput {
  const bytes = (name: string): string | undefined => {
    const tensor = inputs.get(name);
    if (!tensor) return undefined;
    if (tensor.datatype !== 'BYTES') throw invalidArgument(`input '${name}' expects datatype BYTES, but got ${tensor.datatype}`);
    let elements: Buffer[];
    try {
      elements = decodeBytesTensor(tensor.data);
    } catch (error) {
      if (error instanceof MalformedBytesTensorError) throw invalidArgument(`input '${name}': ${error.message}`);
      throw error;
    }
    if (elements.length !== rows) throw invalidArgument(`input '${name}' expects one element per request (${rows}), but got ${elements.length}`);
    return elements[row].toString('utf8');
  };
  const bool = (name: string): boolean | undefined => {
    const tensor = inputs.get(name);
    if (!tensor) return undefined;
    if (tensor.datatype !== 'BOOL') throw invalidArgument(`input '${name}' expects datatype BOOL, but got ${tensor.datatype}`);
    if (tensor.data.length !== rows) throw invalidArgument(`input '${name}' expects one element per request (${rows}), but got ${tensor.data.length}`);
    return tensor.data[row] !== 0;
  };
  const prompt = bytes('text_input');
  if (prompt === undefined) throw invalidArgument(`input 'text_input' is required, but the request does not have it`);
  let params: SamplingParams;
  try {
    params = parseSamplingParameters(bytes('sampling_parameters'));
  } catch (error) {
    throw invalidArgument((error as Error).message);
  }
  const stream = bool('stream') ?? false;
  const exclude = bool('exclude_input_in_output');
  // The vLLM backend's rule: streaming never repeats the prompt, and asking it to is an error.
  if (stream && exclude === false) throw invalidArgument('When streaming, `exclude_input_in_output` = False is not allowed: set it to true or leave it out');
  return {
    prompt,
    params,
    stream,
    excludeInput: exclude ?? stream,
    returnInputTokens: bool('return_num_input_tokens') ?? false,
    returnOutputTokens: bool('return_num_output_tokens') ?? false,
    returnFinishReason: bool('return_finish_reason') ?? false,
  };
}

/** Config parameter `name` as an integer ≥ `min`; undefined when absent. */
function integerParameter(config: RunnerContext['config'], name: string, min: number): number | undefined {
  const raw = configParameter(config, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`parameter '${name}' expects an integer ≥ ${min}, but got '${raw}'`);
  return n;
}

function bytesTensor(name: string, values: string[], batched: boolean): Tensor {
  return { name, datatype: 'BYTES', shape: batched ? [values.length, 1] : [values.length], data: encodeBytesTensor(values) };
}

function uint32Tensor(name: string, values: number[], batched: boolean): Tensor {
  return { name, datatype: 'UINT32', shape: batched ? [values.length, 1] : [values.length], data: Buffer.from(Uint32Array.from(values).buffer) };
}
