/**
 * `complete` and `completionStream`: a checked request goes to the GPU tier
 * the way the model takes it — batching models through BatchGenerator
 * (ModelInfer, coalesced), decoupled models through the endpoint's shared
 * ModelStreamInfer call — and comes back as a Completion or as chunks.
 *
 * Responses that arrive while the consumer is busy are merged into one chunk
 * (deltas concatenated in order), so a slow client or a loaded hop gets fewer,
 * larger chunks rather than a growing backlog.
 *
 * A stream always ends with one final chunk: finishReason STOP/LENGTH when
 * the model finished, CANCELLED when the server says so, ERROR (with a coded
 * `error`) when the GPU tier failed mid-way. Ending the iterator early (the
 * client unsubscribed) cancels the request on the gpu-server.
 */
import { randomUUID } from 'node:crypto';
import { codedError, ErrorCode } from '../../lib/errors';
import { interruptible } from '../../lib/interruptible';
import type { Identity } from '../../lib/identity';
import type { BatchGenerator } from './batch-generator';
import { prepareCompletion, type CompletionInput, type CompletionLimits, type PreparedCompletion } from './completion-request';
import { generationOutputs, generationRequest, type GenerationOutput } from './generation-tensors';
import { gpuError } from './gpu-errors';
import { NoEndpointError, type GpuEndpoint, type GpuTier } from './gpu-tier';
import type { ModelCatalog, ModelInfo } from './model-catalog';
import { StreamError } from './shared-stream';

export type FinishReason = 'STOP' | 'LENGTH' | 'CANCELLED' | 'ERROR';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
}

export interface Completion {
  id: string;
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  model: ModelInfo;
}

export interface CompletionChunk {
  id: string;
  index: number;
  delta: string;
  finishReason: FinishReason | null;
  usage: Usage | null;
  error: { code: string; message: string } | null;
  model: ModelInfo;
}

export interface CompletionsOptions {
  limits: CompletionLimits;
  /** Longest a streamed generation may take before it ends with ERROR. */
  streamDeadlineMs: number;
}

export class Completions {
  constructor(
    private readonly catalog: ModelCatalog,
    private readonly tier: GpuTier,
    private readonly batches: BatchGenerator,
    private readonly options: CompletionsOptions,
  ) {}

  prepare(identity: Identity, input: CompletionInput): Promise<PreparedCompletion> {
    return prepareCompletion(this.catalog, identity, input, this.options.limits);
  }

  async complete(identity: Identity, input: CompletionInput): Promise<Completion> {
    const prepared = await this.prepare(identity, input);
    const id = `cmpl-${randomUUID()}`;
    const { model } = prepared;
    if (!model.decoupled) {
      const output = await this.batches.generate(model, prepared.prompt, prepared.sampling).catch((error: unknown) => {
        throw gpuError(error, model.id);
      });
      return { id, text: output.text, finishReason: finishReason(output.finishReason), usage: usage([output]), model };
    }
    let text = '';
    const outputs: GenerationOutput[] = [];
    let reason: FinishReason = 'STOP';
    for await (const chunk of this.streamPrepared(prepared, id)) {
      if (chunk.error) throw codedError(chunk.error.code as ErrorCode, chunk.error.message, { model: model.id });
      text += chunk.delta;
      if (chunk.finishReason) reason = chunk.finishReason;
      if (chunk.usage) outputs.push({ text: '', inputTokens: chunk.usage.promptTokens, outputTokens: chunk.usage.completionTokens, finishReason: null });
    }
    return { id, text, finishReason: reason, usage: usage(outputs), model };
  }

  /** Checks the input (throwing coded errors), then streams. */
  async stream(identity: Identity, input: CompletionInput): Promise<AsyncGenerator<CompletionChunk>> {
    const prepared = await this.prepare(identity, input);
    const unsubscribed = new AbortController();
    // return() (the client unsubscribed) must cancel on the GPU at once, not after the next token.
    return interruptible(this.streamPrepared(prepared, `cmpl-${randomUUID()}`, unsubscribed.signal), { interrupt: () => unsubscribed.abort() });
  }

  private async *streamPrepared(prepared: PreparedCompletion, id: string, signal?: AbortSignal): AsyncGenerator<CompletionChunk> {
    const { model } = prepared;
    const chunk = (index: number, delta: string, extra: Partial<CompletionChunk> = {}): CompletionChunk => ({
      id,
      index,
      delta,
      finishReason: null,
      usage: null,
      error: null,
      model,
      ...extra,
    });
    if (!model.decoupled) {
      // A batching model answers whole: one chunk carries all of it.
      try {
        const output = await this.batches.generate(model, prepared.prompt, prepared.sampling);
        yield chunk(0, output.text, { finishReason: finishReason(output.finishReason), usage: usage([output]) });
      } catch (error) {
        const coded = gpuError(error, model.id);
        yield chunk(0, '', { finishReason: 'ERROR', error: { code: String(coded.extensions.code), message: coded.message } });
      }
      return;
    }

    const events = new EventQueue<{ output?: GenerationOutput; final?: boolean; error?: StreamError | Error; unsubscribed?: true }>();
    let cancel: (() => void) | undefined;
    let endpoint: GpuEndpoint | undefined;
    const timer = setTimeout(() => {
      endpoint?.breaker.failed(); // a stream that never finishes says the endpoint is unwell
      events.push({ error: new Error(`the generation did not finish within ${this.options.streamDeadlineMs} ms`) });
    }, this.options.streamDeadlineMs);
    signal?.addEventListener('abort', () => events.push({ unsubscribed: true }), { once: true });
    try {
      endpoint = this.tier.pick();
      const picked = endpoint;
      cancel = picked.stream.start(generationRequest(model, id, [prepared.prompt], [prepared.sampling], true), {
        response: (response, final) => {
          picked.breaker.succeeded();
          try {
            events.push({ output: generationOutputs(model, response, 1)[0], final });
          } catch (error) {
            events.push({ error: error as Error });
          }
        },
        error: (error) => {
          // The server answered (a per-request error): the endpoint is healthy. A broken call was counted by the shared stream.
          if (!error.transport) picked.breaker.succeeded();
          events.push({ error });
        },
      });
    } catch (error) {
      clearTimeout(timer);
      const message = error instanceof NoEndpointError ? error.message : `the GPU tier could not start the stream: ${(error as Error).message}`;
      yield chunk(0, '', { finishReason: 'ERROR', error: { code: ErrorCode.GpuUnavailable, message } });
      return;
    }

    const outputs: GenerationOutput[] = [];
    let index = 0;
    try {
      for (;;) {
        // Responses that queued up while the consumer was busy leave as one chunk: under load this
        // cuts the events every hop (subgraph, gateway, client) handles, and no text is lost or reordered.
        const ready = [await events.next(), ...events.takeAll()];
        let delta = '';
        for (const event of ready) {
          if (event.unsubscribed) return;
          if (event.error) {
            // Input errors were caught before sending; what the GPU tier refuses now is its failure, not the caller's.
            yield chunk(index, delta, { finishReason: 'ERROR', usage: outputs.length ? usage(outputs) : null, error: { code: ErrorCode.GpuUnavailable, message: event.error.message } });
            return;
          }
          const output = event.output!;
          outputs.push(output);
          delta += output.text;
          if (event.final) {
            yield chunk(index, delta, { finishReason: finishReason(output.finishReason), usage: usage(outputs) });
            return;
          }
        }
        if (delta) yield chunk(index++, delta);
      }
    } finally {
      clearTimeout(timer);
      // A no-op once the request's final response or error has been routed; otherwise it stops the generation.
      cancel?.();
    }
  }
}

function finishReason(reason: string | null): FinishReason {
  switch (reason) {
    case 'length':
      return 'LENGTH';
    case 'cancelled':
    case 'abort':
      return 'CANCELLED';
    default:
      return 'STOP';
  }
}

/**
 * Usage from the server's counts. vLLM reports the prompt's tokens on each
 * response and, when streaming, the tokens of that response; so prompt is
 * the first count seen and completion the sum.
 */
function usage(outputs: GenerationOutput[]): Usage {
  const promptTokens = outputs.find((o) => o.inputTokens !== null)?.inputTokens ?? 0;
  const completionTokens = outputs.reduce((n, o) => n + (o.outputTokens ?? 0), 0);
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, promptCacheHitTokens: 0, promptCacheMissTokens: promptTokens };
}

/** Callback-to-iterator bridge: pushes never block; next() waits for the next item. */
class EventQueue<T> {
  private readonly items: T[] = [];
  private waiter: ((item: T) => void) | undefined;

  push(item: T): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(item);
    } else this.items.push(item);
  }

  next(): Promise<T> {
    if (this.items.length) return Promise.resolve(this.items.shift()!);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Everything queued right now, without waiting. */
  takeAll(): T[] {
    return this.items.splice(0);
  }
}
