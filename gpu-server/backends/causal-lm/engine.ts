/**
 * Continuous batching for one model instance. One loop runs while there is
 * work; each turn it
 *   1. drops sequences whose request was cancelled (their promise resolves
 *      with finish reason "cancelled"; their KV cache is released);
 *   2. prefills the requests that arrived since the last turn in one forward
 *      pass over their prompts (left-padded to the longest, padding masked),
 *      each from the end of its longest prefix in the instance's prefix
 *      cache (prefix-cache.ts; the cached K/V are its past), sampling each
 *      one's first token, and caches the prompts' whole blocks;
 *   3. runs ONE decode forward pass over every live sequence: each feeds its
 *      last token at its own position, the KV caches are left-padded to the
 *      longest past with attention_mask zeros over the padding, and the graph
 *      (causal mask + padding mask) ignores those slots;
 *   4. hands each sequence its sampled token; finished ones leave.
 * New requests therefore join at the next step, finished ones leave at once,
 * and a cancel takes effect before the next forward pass.
 *
 * The KV caches live in the graph's own present tensors: while nobody joins
 * or leaves, one pass's presents are the next pass's past without a copy;
 * when the membership changes, each sequence's cache is copied once into new
 * left-padded tensors as wide as the longest (padding no one needs is
 * dropped). Each sequence attends only to its own positions, so batching
 * does not change what it computes beyond float rounding in the batched
 * matrix products.
 */
import { invalidArgument } from '../../core/errors';
import * as ort from 'onnxruntime-node';
import type { CausalLmGeometry } from './model-files';
import type { PrefixCache } from './prefix-cache';
import type { Sampler } from './sampling';

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerationRequest {
  promptIds: number[];
  /** Tokens to generate at most; the context length may end it sooner. */
  maxTokens: number;
  sample: Sampler;
  /** End the sequence at an end-of-sequence token (which is counted but not passed to onToken). */
  stopOnEos: boolean;
  signal: AbortSignal;
  /**
   * Receives each generated token; `last` when the sequence ends with it
   * anyway (max_tokens or the context length); `cachedPromptTokens`, the
   * prompt tokens the prefill took from the prefix cache. Returns true when
   * the request wants to stop (a stop string).
   */
  onToken(id: number, last: boolean, cachedPromptTokens: number): boolean;
}

export interface GenerationResult {
  finishReason: FinishReason;
  /** Tokens generated, an end-of-sequence token included. */
  outputTokens: number;
  /** Prompt tokens served from the prefix cache (not prefilled). */
  cachedPromptTokens: number;
}

/** One call of the graph, reported to observers (tests, statistics). */
export interface ForwardPass {
  kind: 'prefill' | 'decode';
  /** Sequences in the batch. */
  sequences: number;
  /** New tokens fed (batch × sequence length). */
  tokens: number;
}

/** Where a sequence's KV cache lives: row `row` of tensors [batch, heads, past, headDim], left-padded. */
interface KvLocation {
  /** present/past tensors, index layer × 2 + (0 = key, 1 = value). */
  tensors: ort.Tensor[];
  row: number;
  past: number;
}

interface Sequence {
  request: GenerationRequest;
  resolve(result: GenerationResult): void;
  reject(error: Error): void;
  /** Undefined once the sequence has left (finished, cancelled or failed). */
  kv?: KvLocation;
  /** Positions held in the cache (the last `length` of its row). */
  length: number;
  lastToken: number;
  generated: number;
  /** Prompt tokens whose K/V came from the prefix cache. */
  cached: number;
}

export class GenerationEngine {
  private pending: Sequence[] = [];
  /** Taken from `pending` for the prefill pass in progress. */
  private prefilling: Sequence[] = [];
  private live: Sequence[] = [];
  /** The rows of the last decode pass's present tensors, reused as the next pass's past when nobody joined or left. */
  private lastBatch: Sequence[] = [];
  private running = false;
  private closed: Error | undefined;
  private readonly observers = new Set<(pass: ForwardPass) => void>();

  constructor(
    /** The ONNX Runtime session (only `run` is used, so tests can give a stand-in). */
    private readonly session: Pick<ort.InferenceSession, 'run'>,
    private readonly geometry: CausalLmGeometry,
    /** Longest sequence, prompt plus generated tokens. */
    readonly contextLength: number,
    /** Reused prompt prefixes of this instance; none when caching is off. */
    private readonly prefixCache?: PrefixCache,
  ) {}

  /** Requests waiting to join plus sequences being generated. */
  get activeSequences(): number {
    return this.pending.length + this.prefilling.length + this.live.length;
  }

  /** Calls `listener` after every forward pass; returns the function that stops it. */
  observe(listener: (pass: ForwardPass) => void): () => void {
    this.observers.add(listener);
    return () => this.observers.delete(listener);
  }

  generate(request: GenerationRequest): Promise<GenerationResult> {
    if (this.closed) return Promise.reject(this.closed);
    const prompt = request.promptIds.length;
    // The caller's input, not the server, is wrong here: INVALID_ARGUMENT (HTTP 400), as vLLM answers.
    if (prompt === 0) return Promise.reject(invalidArgument('the prompt expects at least one token, but tokenized to none'));
    if (prompt >= this.contextLength) {
      return Promise.reject(invalidArgument(`the prompt has ${prompt} tokens, but the context length is ${this.contextLength}: it must be shorter to leave room for one generated token`));
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ request, resolve, reject, length: 0, lastToken: -1, generated: 0, cached: 0 });
      if (!this.running) {
        this.running = true;
        // Started on the next turn, so requests arriving together (one message batch) share the first prefill.
        setImmediate(() => void this.loop());
      }
    });
  }

  /** Fails every waiting and live sequence and accepts no more. */
  close(): void {
    this.closed ??= new Error('the model instance was unloaded while the request was generating');
    for (const seq of [...this.pending.splice(0), ...this.prefilling.splice(0), ...this.live.splice(0)]) {
      seq.kv = undefined;
      seq.reject(this.closed);
    }
    this.lastBatch = [];
  }

  // ---------------------------------------------------------------- loop

  private async loop(): Promise<void> {
    try {
      while (!this.closed && this.pending.length + this.live.length > 0) {
        this.dropCancelled();
        const joining = this.pending.splice(0);
        this.prefilling = joining;
        if (joining.length > 0) {
          try {
            const logits = await this.prefill(joining);
            this.prefilling = [];
            joining.forEach((seq, i) => {
              if (!seq.kv) return; // closed during the pass: already rejected by close()
              if (seq.request.signal.aborted) {
                seq.kv = undefined;
                seq.resolve({ finishReason: 'cancelled', outputTokens: 0, cachedPromptTokens: seq.cached });
              } else if (!this.accept(seq, seq.request.sample(logits[i]))) {
                this.live.push(seq);
              }
            });
          } catch (error) {
            this.prefilling = [];
            for (const seq of joining) {
              seq.kv = undefined;
              seq.reject(asError(error));
            }
          }
        }
        this.dropCancelled();
        if (this.live.length > 0) await this.decodeStep();
        // Lets new requests and cancellations (messages, timers) in between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running = false;
      this.lastBatch = [];
    }
  }

  private dropCancelled(): void {
    const keep = (seq: Sequence) => {
      if (!seq.request.signal.aborted) return true;
      seq.kv = undefined;
      seq.resolve({ finishReason: 'cancelled', outputTokens: seq.generated, cachedPromptTokens: seq.cached });
      return false;
    };
    this.pending = this.pending.filter(keep);
    this.live = this.live.filter(keep);
  }

  /** Handles one sampled token; returns true when the sequence is finished (and settled). */
  private accept(seq: Sequence, token: number): boolean {
    seq.generated++;
    seq.lastToken = token;
    const finish = (finishReason: FinishReason) => {
      seq.kv = undefined;
      seq.resolve({ finishReason, outputTokens: seq.generated, cachedPromptTokens: seq.cached });
      return true;
    };
    if (seq.request.stopOnEos && this.geometry.eosTokenIds.includes(token)) return finish('stop');
    // Prompt + generated tokens (the cache plus the token just sampled) may not exceed the context length.
    const atLength = seq.generated >= seq.request.maxTokens || seq.length + 1 >= this.contextLength;
    let stop: boolean;
    try {
      stop = seq.request.onToken(token, atLength, seq.cached);
    } catch (error) {
      seq.kv = undefined;
      seq.reject(asError(error));
      return true;
    }
    if (stop) return finish('stop');
    if (atLength) return finish('length');
    return false;
  }

  /**
   * One pass over the prompts of `batch`, each fed only from where its cached
   * prefix ends: the cached K/V are the past (right-aligned, left-padded to
   * the longest cached prefix P), the rest of the prompt is left-padded to
   * the longest rest W, everything padded masked, each token at its true
   * position. Row r then holds [pad | cached c | pad | rest u] in its
   * P + W present columns; the cached part is moved right against the rest,
   * so each row's cache is contiguous and right-aligned as decode steps
   * expect. Returns each sequence's logits for its first generated token.
   */
  private async prefill(batch: Sequence[]): Promise<Float32Array[]> {
    const { layers, kvHeads, headDim, vocabSize } = this.geometry;
    const b = batch.length;
    const cache = this.prefixCache;
    const hashes = batch.map((seq) => cache?.hashes(seq.request.promptIds) ?? []);
    const reused = batch.map((seq, r) => cache?.lookup(hashes[r], seq.request.promptIds.length) ?? []);
    batch.forEach((seq, r) => (seq.cached = reused[r].length * (cache?.blockTokens ?? 0)));
    const past = Math.max(...batch.map((s) => s.cached));
    const width = Math.max(...batch.map((s) => s.request.promptIds.length - s.cached));
    const ids = new BigInt64Array(b * width);
    const mask = new BigInt64Array(b * (past + width));
    const positions = new BigInt64Array(b * width);
    batch.forEach((seq, r) => {
      const rest = seq.request.promptIds.slice(seq.cached);
      const offset = r * width + (width - rest.length);
      mask.fill(1n, r * (past + width) + past - seq.cached, r * (past + width) + past);
      mask.fill(1n, (r + 1) * (past + width) - rest.length, (r + 1) * (past + width));
      rest.forEach((id, j) => {
        ids[offset + j] = BigInt(id);
        positions[offset + j] = BigInt(seq.cached + j);
      });
    });
    const pastData = Array.from({ length: 2 * layers }, () => new Float32Array(b * kvHeads * past * headDim));
    reused.forEach((blocks, r) => blocks.forEach((block, i) => cache!.copyOut(block, { tensors: pastData, width: past, row: r, column: past - batch[r].cached + i * cache!.blockTokens })));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [b, width]),
      attention_mask: new ort.Tensor('int64', mask, [b, past + width]),
    };
    if (this.geometry.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', positions, [b, width]);
    if (this.geometry.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(past > 0 ? 1 : 0), [1]);
    for (let l = 0; l < layers; l++) {
      ['key', 'value'].forEach((kind, k) => (feeds[`past_key_values.${l}.${kind}`] = new ort.Tensor('float32', pastData[2 * l + k], [b, kvHeads, past, headDim])));
    }
    const out = await this.session.run(feeds);
    this.report({ kind: 'prefill', sequences: b, tokens: b * width });
    const presents = this.presents(out);
    const presentData = presents.map((t) => t.data as Float32Array);
    const logits = out.logits.data as Float32Array;
    return batch.map((seq, r) => {
      const prompt = seq.request.promptIds.length;
      const gap = width - (prompt - seq.cached);
      if (seq.cached > 0 && gap > 0) {
        for (const data of presentData) {
          for (let h = 0; h < kvHeads; h++) {
            const start = ((r * kvHeads + h) * (past + width) + past - seq.cached) * headDim;
            data.copyWithin(start + gap * headDim, start, start + seq.cached * headDim);
          }
        }
      }
      cache?.store(hashes[r], { tensors: presentData, width: past + width, row: r, column: past + width - prompt });
      // A sequence closed during the pass keeps no cache.
      if (!this.closed) seq.kv = { tensors: presents, row: r, past: past + width };
      seq.length = prompt;
      const last = (r * width + width - 1) * vocabSize;
      return logits.slice(last, last + vocabSize);
    });
  }

  private async decodeStep(): Promise<void> {
    const batch = this.live;
    const { layers, vocabSize } = this.geometry;
    const b = batch.length;
    // Unchanged membership: the last pass's present tensors are this pass's past as they are.
    const same = batch.length === this.lastBatch.length && batch.every((seq, i) => seq === this.lastBatch[i]);
    const past = same ? batch[0].kv!.past : Math.max(...batch.map((s) => s.length));
    const pastTensors = same ? batch[0].kv!.tensors : this.gather(batch, past);
    const mask = new BigInt64Array(b * (past + 1));
    batch.forEach((seq, i) => mask.fill(1n, i * (past + 1) + (past - seq.length), (i + 1) * (past + 1)));
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor(
        'int64',
        BigInt64Array.from(batch, (s) => BigInt(s.lastToken)),
        [b, 1],
      ),
      attention_mask: new ort.Tensor('int64', mask, [b, past + 1]),
    };
    if (this.geometry.hasPositionIds)
      feeds.position_ids = new ort.Tensor(
        'int64',
        BigInt64Array.from(batch, (s) => BigInt(s.length)),
        [b, 1],
      );
    if (this.geometry.hasUseCacheBranch) feeds.use_cache_branch = new ort.Tensor('bool', Uint8Array.of(1), [1]);
    for (let l = 0; l < layers; l++) {
      feeds[`past_key_values.${l}.key`] = pastTensors[2 * l];
      feeds[`past_key_values.${l}.value`] = pastTensors[2 * l + 1];
    }
    let out: ort.InferenceSession.OnnxValueMapType;
    try {
      out = await this.session.run(feeds);
    } catch (error) {
      this.live = [];
      this.lastBatch = [];
      for (const seq of batch) {
        seq.kv = undefined;
        seq.reject(asError(error));
      }
      return;
    }
    this.report({ kind: 'decode', sequences: b, tokens: b });
    const presents = this.presents(out);
    this.lastBatch = batch.slice();
    const logits = out.logits.data as Float32Array;
    const finished = new Set<Sequence>();
    batch.forEach((seq, i) => {
      // Closed during the pass (already settled), or cancelled during it (dropped before the next pass, without this token).
      if (!seq.kv || seq.request.signal.aborted) return;
      seq.kv = { tensors: presents, row: i, past: past + 1 };
      seq.length++;
      if (this.accept(seq, seq.request.sample(logits.subarray(i * vocabSize, (i + 1) * vocabSize)))) finished.add(seq);
    });
    this.live = this.live.filter((seq) => !finished.has(seq));
  }

  private presents(out: ort.InferenceSession.OnnxValueMapType): ort.Tensor[] {
    const tensors: ort.Tensor[] = [];
    for (let l = 0; l < this.geometry.layers; l++) tensors.push(out[`present.${l}.key`], out[`present.${l}.value`]);
    return tensors;
  }

  /** New past tensors [batch, heads, past, headDim] holding each sequence's cache right-aligned (left padding). */
  private gather(batch: Sequence[], past: number): ort.Tensor[] {
    const { layers, kvHeads, headDim } = this.geometry;
    const tensors: ort.Tensor[] = [];
    for (let t = 0; t < 2 * layers; t++) {
      const data = new Float32Array(batch.length * kvHeads * past * headDim);
      batch.forEach((seq, i) => {
        const { tensors: source, row, past: sourcePast } = seq.kv!;
        const from = source[t].data as Float32Array;
        const span = seq.length * headDim;
        for (let h = 0; h < kvHeads; h++) {
          const start = ((row * kvHeads + h) * sourcePast + (sourcePast - seq.length)) * headDim;
          data.set(from.subarray(start, start + span), ((i * kvHeads + h) * past + (past - seq.length)) * headDim);
        }
      });
      tensors.push(new ort.Tensor('float32', data, [batch.length, kvHeads, past, headDim]));
    }
    return tensors;
  }

  private report(pass: ForwardPass): void {
    for (const observer of this.observers) observer(pass);
  }
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
