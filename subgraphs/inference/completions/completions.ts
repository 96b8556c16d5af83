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
 * client unsubscribed) cancels the request on the gpu-server. A stream whose
 * GPU server was lost under it is started again on another (`restartable`):
 * every generation has a seed (the client's, or one chosen here), so the new
 * run makes the same text, and what was sent already is not sent again.
 *
 * Billing (billing/usage-billing.ts): both are reserved with billing before the GPU tier is
 * called — a refusal is the mutation's error, or the subscription's at
 * subscribe time — and every request, however it ends, publishes one usage
 * event whose numbers are the usage the client is shown.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { codedError, ErrorCode } from '../../../lib/errors';
import type { Logger } from '../../../lib/log';
import { interruptible, RETURNED } from '../../../lib/interruptible';
import type { FinishReason, Usage } from '../../../lib/usage-events';
import type { BatchGenerator } from './batch-generator';
import { prepareCompletion, type CompletionInput, type CompletionLimits, type PreparedCompletion } from './completion-request';
import { generationOutputs, generationRequest, type GenerationOutput } from './generation-tensors';
import { conversationKey } from '../gpu-tier/prefix-affinity';
import { errorCodeOfStatus, gpuError } from '../gpu-tier/gpu-errors';
import type { GpuTier, StreamHandle } from '../gpu-tier/gpu-tier';
import type { Caller, MeteredRequest, Metering, ResponseCacheBilling } from '../billing/usage-billing';
import type { ModelCatalog, ModelInfo } from '../models/model-catalog';
import { priorityFor, type PriorityByScope } from '../gpu-tier/priority';
import type { CachedCompletion, CacheStatus, ResponseCache } from './response-cache';
import { StreamError } from '../gpu-tier/shared-stream';
import { StreamText } from './stream-text';

export type { FinishReason } from '../../../lib/usage-events';

interface Begun {
  prepared: PreparedCompletion;
  metered: MeteredRequest;
  /** The response-cache entry for this request, or null when it is not cached (see response-cache.ts). */
  cacheKey: string | null;
  hit: CachedCompletion | null;
}

export interface Completion {
  id: string;
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  model: ModelInfo;
  cacheStatus: CacheStatus;
}

export interface CompletionChunk {
  id: string;
  index: number;
  delta: string;
  /** Characters of the stream's text before `delta`, in every run (a resumed run starts at its resumeAt). */
  offset: number;
  finishReason: FinishReason | null;
  usage: Usage | null;
  error: { code: string; message: string } | null;
  model: ModelInfo;
  /** Set on the last chunk. */
  cacheStatus: CacheStatus | null;
}

/** A run of a resumable stream (resumable-streams.ts), as `stream` takes it. */
export interface StreamRun {
  /** Characters of the stream's text (UTF-16 code units) the client already has: generated again, not sent again. */
  resumeAt: number;
  /**
   * Claims the run once the input is checked, for its model and the seed it would generate with (the input's, or
   * one chosen for it): the seed every run of the stream generates with (the first run's), and the caller to bill
   * it as (its usage event and its share of the bill). Throws the coded refusal.
   */
  claim(model: ModelInfo, seed: number): Promise<{ seed: number; caller: Caller }>;
}

export interface CompletionsOptions {
  limits: CompletionLimits;
  /** Longest a streamed generation may take before it ends with ERROR. */
  streamDeadlineMs: number;
  /** Triton `priority` by the caller's scopes (paying traffic first). */
  priorities: PriorityByScope;
  responseCache: ResponseCache;
  responseCacheBilling: ResponseCacheBilling;
  /** Where a stream restarted on another GPU endpoint is logged. */
  log?: Logger;
}

export class Completions {
  constructor(
    private readonly catalog: ModelCatalog,
    private readonly tier: GpuTier,
    private readonly batches: BatchGenerator,
    private readonly metering: Metering,
    private readonly options: CompletionsOptions,
  ) {}

  /**
   * Checks the input, then looks it up in the response cache and reserves its
   * cost at once; throws the coded error of either. A hit is billed too, so it is
   * reserved like any request (its cost is never more than the reservation).
   */
  private async begin(caller: Caller, input: CompletionInput, run?: StreamRun): Promise<Begun> {
    const started = await this.start(caller, input, run);
    return { ...started, metered: await started.reserved };
  }

  /** As `begin`, but the reservation is started, not awaited: a batched request joins its batch meanwhile (runCleared). */
  private async start(caller: Caller, input: CompletionInput, run?: StreamRun): Promise<Omit<Begun, 'metered'> & { reserved: Promise<MeteredRequest> }> {
    let prepared = await prepareCompletion(this.catalog, caller.identity, input, this.options.limits);
    const { responseCache } = this.options;
    // A resumable stream is always generated: a cached answer would be billed apart from the stream's runs.
    const cacheKey = run ? null : responseCache.keyFor(caller.identity.sub!, prepared.model, prepared.prompt, prepared.sampling, input.cache);
    // The client's seed, or one of the server's, chosen after the cache key (which stays none for an unseeded
    // request): sampling is as random, and a stream whose GPU server is lost can be made again, the same, on
    // another (restartable). A resumable stream generates with its first run's; a batched generation never
    // restarts, and keeps none.
    const seed = () => prepared.sampling.seed ?? randomInt(MAX_SEED);
    const seeded = (chosen: number): PreparedCompletion => ({ ...prepared, sampling: { ...prepared.sampling, seed: chosen } });
    if (run) {
      const claimed = await run.claim(prepared.model, seed());
      prepared = seeded(claimed.seed);
      caller = claimed.caller;
    } else if (prepared.model.decoupled && prepared.sampling.seed === undefined && prepared.sampling.temperature > 0) {
      prepared = seeded(seed());
    }
    // A hit is reserved too, so the reservation need not wait for the lookup: their round trips overlap.
    const reserved = this.metering.begin(caller, prepared);
    // Every path awaits it (and so throws billing's refusal); this only keeps a refusal from going unhandled meanwhile.
    reserved.catch(() => undefined);
    // A cache that cannot be read only costs the saving: the request goes to the GPU.
    const hit = cacheKey ? await responseCache.get(cacheKey).catch(() => null) : null;
    return { prepared, cacheKey, hit, reserved };
  }

  /** Keeps a whole, successful result for the next identical request; a failure to store only costs the saving. */
  private remember(cacheKey: string | null, text: string, reason: FinishReason, usage: Usage, finished: boolean): void {
    if (!cacheKey || !finished || (reason !== 'STOP' && reason !== 'LENGTH')) return;
    void this.options.responseCache.put(cacheKey, { text, finishReason: reason, promptTokens: usage.promptTokens, completionTokens: usage.completionTokens }).catch(() => undefined);
  }

  async complete(caller: Caller, input: CompletionInput): Promise<Completion> {
    const { prepared, cacheKey, hit, reserved } = await this.start(caller, input);
    const id = `cmpl-${randomUUID()}`;
    const { model } = prepared;
    if (hit) return { id, text: hit.text, finishReason: hit.finishReason, usage: (await reserved).endCached(hit, this.options.responseCacheBilling), model, cacheStatus: 'HIT' };
    const cacheStatus: CacheStatus = cacheKey ? 'MISS' : 'BYPASS';
    if (!model.decoupled) {
      let output: GenerationOutput;
      try {
        output = await this.batches.generate(model, prepared.prompt, prepared.sampling, priorityFor(caller.identity, this.options.priorities), reserved);
      } catch (error) {
        // A refused reservation throws its refusal here; one that went through is released at 0/0.
        (await reserved).end('ERROR', false);
        throw gpuError(error, model.id);
      }
      const metered = await reserved;
      metered.received(output);
      const reason = finishReason(output.finishReason);
      const usage = metered.end(reason, true);
      this.remember(cacheKey, output.text, reason, usage, true);
      return { id, text: output.text, finishReason: reason, usage, model, cacheStatus };
    }
    const metered = await reserved;
    let text = '';
    let reason: FinishReason = 'STOP';
    let usage: Usage | null = null;
    // Chunks gathered here reach the client only if the whole completion does: a failure sends it nothing.
    for await (const chunk of this.streamPrepared(prepared, metered, id, { delivered: false, priority: priorityFor(caller.identity, this.options.priorities), cacheKey })) {
      if (chunk.error) throw codedError(chunk.error.code as ErrorCode, chunk.error.message, { model: model.id });
      text += chunk.delta;
      if (chunk.finishReason) reason = chunk.finishReason;
      if (chunk.usage) usage = chunk.usage;
    }
    return { id, text, finishReason: reason, usage: usage ?? metered.end(reason, false), model, cacheStatus };
  }

  /** Checks the input and reserves its cost (throwing coded errors), then streams; as run `run` of a resumable stream, from its `resumeAt`. */
  async stream(caller: Caller, input: CompletionInput, run?: StreamRun): Promise<AsyncGenerator<CompletionChunk>> {
    const { prepared, metered, cacheKey, hit } = await this.begin(caller, input, run);
    if (hit) return replay(`cmpl-${randomUUID()}`, prepared.model, hit, metered.endCached(hit, this.options.responseCacheBilling));
    const unsubscribed = new AbortController();
    // return() (the client unsubscribed) must cancel on the GPU at once, not after the next token.
    // `end` also covers a return() before the first next(), when the generator never ran: the hold is released.
    const priority = priorityFor(caller.identity, this.options.priorities);
    const resumeAt = run?.resumeAt ?? 0;
    return interruptible(this.streamPrepared(prepared, metered, `cmpl-${randomUUID()}`, { delivered: true, signal: unsubscribed.signal, priority, cacheKey, resumeAt }), {
      interrupt: () => unsubscribed.abort(RETURNED),
      end: () => metered.end('CANCELLED', false),
    });
  }

  /**
   * The request's chunks; `delivered`: each chunk yielded reaches the client
   * (a subscription), which is what a request cut short is billed for.
   * `resumeAt`: the text's first characters the client already has, which
   * are generated but not sent again (and count as delivered).
   */
  private async *streamPrepared(
    prepared: PreparedCompletion,
    metered: MeteredRequest,
    id: string,
    { delivered, signal, priority, cacheKey, resumeAt = 0 }: { delivered: boolean; signal?: AbortSignal; priority?: number; cacheKey: string | null; resumeAt?: number },
  ): AsyncGenerator<CompletionChunk> {
    const { model } = prepared;
    // What the client has of the text, across the runs of the generation (resumed, or restarted after a GPU loss).
    const text = new StreamText(resumeAt, (had) => delivered && metered.sent(had));
    const make = (index: number, delta: string, extra: Partial<CompletionChunk> = {}): CompletionChunk => ({
      id,
      index,
      delta,
      offset: text.offsetOf(delta),
      finishReason: null,
      usage: null,
      error: null,
      model,
      cacheStatus: null,
      ...extra,
    });
    // A chunk's text counts as sent once the chunk is handed over: the consumer has it then.
    const chunk = (index: number, delta: string): CompletionChunk => {
      if (delivered) metered.sent(delta);
      return make(index, delta);
    };
    // The last chunk carries the usage billed, which for a request cut short counts the last chunk's own text.
    const last = (index: number, delta: string, reason: FinishReason, finished: boolean, error: CompletionChunk['error'] = null): CompletionChunk => {
      // A run that ended short of the client's point, or made other text after a restart, cannot end well.
      const problem = finished ? text.problem(true) : undefined;
      if (problem) return last(index, '', 'ERROR', false, problem);
      if (delivered) metered.sent(delta);
      const usage = metered.end(reason, finished);
      this.remember(cacheKey, text.text, reason, usage, finished);
      return make(index, delta, { finishReason: reason, usage, error, cacheStatus: cacheKey ? 'MISS' : 'BYPASS' });
    };
    try {
      if (!model.decoupled) {
        // A batching model answers whole: one chunk carries all of it.
        let output: GenerationOutput;
        try {
          output = await this.batches.generate(model, prepared.prompt, prepared.sampling, priority);
        } catch (error) {
          const coded = gpuError(error, model.id);
          yield last(0, '', 'ERROR', false, { code: String(coded.extensions.code), message: coded.message });
          return;
        }
        metered.received(output);
        yield last(0, text.take(output.text), finishReason(output.finishReason), true);
        return;
      }

      const events = new EventQueue<{ run?: number; output?: GenerationOutput; final?: boolean; error?: StreamError | Error; unsubscribed?: true }>();
      let stream: StreamHandle | undefined;
      const timer = setTimeout(() => {
        stream?.endpoint.breaker.observe(false); // a stream that never finishes says the endpoint is unwell
        events.push({ error: new Error(`the generation did not finish within ${this.options.streamDeadlineMs} ms`) });
      }, this.options.streamDeadlineMs);
      signal?.addEventListener('abort', () => events.push({ unsubscribed: true }), { once: true });
      // The tier picks the endpoint that served this conversation before (its prompt is cached there) or the
      // least-loaded one, and moves a stream that never reached its server. Each run's events carry its number,
      // so a restarted run's are told from the lost one's.
      let run = 0;
      const startRun = () => {
        const current = ++run;
        stream = this.tier.startStream(
          generationRequest(model, current === 1 ? id : `${id}-${current}`, [prepared.prompt], [prepared.sampling], true, priority),
          {
            response: (response, final) => {
              try {
                events.push({ run: current, output: generationOutputs(model, response, 1)[0], final });
              } catch (error) {
                events.push({ run: current, error: error as Error });
              }
            },
            error: (error) => events.push({ run: current, error }),
          },
          conversationKey(metered.facts.userId, model.id, prepared.messages),
        );
      };
      try {
        startRun();
      } catch (error) {
        clearTimeout(timer);
        const coded = gpuError(error, model.id); // MODEL_NOT_FOUND / MODEL_NOT_READY (with retryAfter) / GPU_UNAVAILABLE
        yield last(0, '', 'ERROR', false, { code: String(coded.extensions.code), message: coded.message });
        return;
      }

      let index = 0;
      try {
        for (;;) {
          // Responses that queued up while the consumer was busy leave as one chunk: under load this
          // cuts the events every hop (subgraph, gateway, client) handles, and no text is lost or reordered.
          const ready = [await events.next(), ...events.takeAll()];
          let delta = '';
          for (const event of ready) {
            if (event.unsubscribed) return; // billed as CANCELLED below, for the text sent so far
            if (event.run !== undefined && event.run !== run) continue; // a lost run's late word
            if (event.error && restartable(event.error, run)) {
              // Its GPU server was lost: the same seed makes the same text on another one, which goes on from here.
              if (delta) yield chunk(index++, delta);
              delta = '';
              text.restart();
              metered.restarted();
              const lost = stream?.endpoint.address;
              try {
                startRun();
                this.options.log?.warn('stream restarted on another GPU endpoint after its own was lost', { id, from: lost, to: stream?.endpoint.address, error: event.error.message });
              } catch (error) {
                // No endpoint to go on with: the stream ends with the loss that cut it.
                const message = `${event.error.message}; it could not be started again on another GPU endpoint: ${(error as Error).message}`;
                yield last(index, '', 'ERROR', false, { code: streamErrorCode(event.error), message });
                return;
              }
              continue;
            }
            if (event.error) {
              yield last(index, delta, 'ERROR', false, { code: streamErrorCode(event.error), message: event.error.message });
              return;
            }
            const output = event.output!;
            metered.received(output);
            delta += text.take(output.text);
            if (text.diverged) {
              // The client has text this run does not make: going on would splice two texts.
              yield last(index, '', 'ERROR', false, text.problem(false)!);
              return;
            }
            if (event.final) {
              yield last(index, delta, finishReason(output.finishReason), true);
              return;
            }
          }
          if (delta) yield chunk(index++, delta);
        }
      } finally {
        clearTimeout(timer);
        // A no-op once the request's final response or error has been routed; otherwise it stops the generation.
        stream?.cancel();
      }
    } finally {
      // However the generator ends (the consumer returned, an unexpected throw) the request is billed once; a no-op once ended.
      metered.end('CANCELLED', false);
    }
  }
}

/** The largest seed the server chooses: an Int of the schema, positive. */
const MAX_SEED = 2 ** 31 - 1;

/** How many times a stream is started again after its GPU server was lost under it. */
const STREAM_RESTARTS = 2;

/**
 * A stream whose call broke under it (its GPU server died or its connection dropped: StreamError.transport) is
 * started again elsewhere, up to STREAM_RESTARTS times: the same text can be made again, since every streamed
 * generation is greedy or has a seed (`start`).
 */
function restartable(error: StreamError | Error, run: number): boolean {
  return error instanceof StreamError && error.transport && run <= STREAM_RESTARTS;
}

/**
 * The code of a stream's error: by the gRPC status it carries (the server's
 * `sluice_error_code` parameter, or the broken call's status) through the same
 * table as unary calls — a prompt longer than the model's context is
 * INVALID_ARGUMENT, so BAD_USER_INPUT. Without a status (NVIDIA's Triton sends
 * no code for a request's error) it is the GPU tier's failure.
 */
function streamErrorCode(error: StreamError | Error): ErrorCode {
  return error instanceof StreamError && error.status !== undefined ? errorCodeOfStatus(error.status) : ErrorCode.GpuUnavailable;
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

/** A response-cache hit as a stream: the whole text in one chunk, which is also the last. */
async function* replay(id: string, model: ModelInfo, hit: CachedCompletion, usage: Usage): AsyncGenerator<CompletionChunk> {
  yield { id, index: 0, delta: hit.text, offset: 0, finishReason: hit.finishReason, usage, error: null, model, cacheStatus: 'HIT' };
}
