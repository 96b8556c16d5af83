/**
 * The inference side of billing (DESIGN §4, issue 9): reserve before, one
 * usage event after.
 *
 * Before the GPU tier is called, `begin` reserves the request's maximum cost
 * with billing (lib/billing-client.ts), forwarding the caller's identity
 * header unchanged. Billing's refusal (INSUFFICIENT_BALANCE,
 * SPEND_LIMIT_EXCEEDED, MODEL_NOT_PRICED, SERVICE_UNAVAILABLE…) is thrown
 * as it is, so the request fails before anything is generated.
 *
 * The maximum cost: every prompt token a cache miss, and the prompt's tokens
 * bounded by its UTF-8 byte length (a byte-level BPE token covers at least
 * one byte), capped at the model's context length; plus maxTokens.
 *
 * After the request ends, however it ends, `MeteredRequest.end` publishes
 * exactly one usage event with the real usage — never the reservation — and
 * returns that usage, so what the client is shown is what is billed:
 * - the server's final counts (num_input_tokens, the sum of num_output_tokens)
 *   when the generation finished;
 * - when it was cut short (unsubscribed, failed, past its deadline) the
 *   server's final counts never came: completion tokens are our tokenizer's
 *   count (lib/token-counter.ts, r50k_base) of the text that reached the
 *   client, prompt tokens the count of the last response that carried one,
 *   else 0. A request the GPU refused or never started generated nothing and
 *   is billed 0/0, which releases its hold.
 * - a model that returns no counts at all is billed our tokenizer's counts of
 *   its prompt and its text.
 *
 * Prompt-cache hits are exactly what the GPU reused: the `sluice_cached_prompt_tokens`
 * the gpu-server reports beside num_input_tokens (the prompt tokens its
 * prefix KV cache served instead of prefilling, protocol/triton/README.md),
 * taken from the same response as the prompt count; the rest of the prompt
 * is cache misses. A server that does not report it (NVIDIA's Triton, whose
 * vLLM backend keeps its prefix-cache hits to itself) gets every prompt token
 * billed as a miss, as does a prompt counted by our own tokenizer.
 */
import { randomUUID } from 'node:crypto';
import type { Reservation, ReserveRequest } from '../../../lib/billing-client';
import type { Identity } from '../../../lib/identity';
import type { Logger } from '../../../lib/log';
import { countTokens } from '../../../lib/token-counter';
import { MAX_TOKENS_PER_EVENT, type FinishReason, type Usage, type UsageEvent } from '../../../lib/usage-events';
import type { PreparedCompletion } from '../completions/completion-request';
import type { GenerationOutput } from '../completions/generation-tensors';
import type { ModelInfo } from '../models/model-catalog';
import type { UsagePublisher } from './usage-publisher';

/** How an answer from the response cache is billed (INFERENCE_RESPONSE_CACHE_BILLING). */
export type ResponseCacheBilling = 'free' | 'cache-hit';

const ZERO_USAGE: Usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, promptCacheHitTokens: 0, promptCacheMissTokens: 0 };

/** Who is asking, as the subgraph's context has it. */
export interface Caller {
  identity: Identity;
  /** Forwarded unchanged to billing, which takes the user and API key from it. */
  identityHeader: string;
  /** The id of the request's usage event, when it must be the same for every run of the request (an idempotency key's, idempotent-completions.ts); a new one otherwise. */
  usageEventId?: string;
  /**
   * What the request adds to the bill, given its usage, when that is not all of it: a resumed stream's run pays
   * only for what no earlier run of the stream was billed for (resumable-streams.ts). The client is shown the usage.
   */
  billedShare?: (usage: Usage) => Promise<Usage>;
}

/** What metering needs of billing: BillingClient. */
export interface Reserver {
  reserve(identityHeader: string, body: ReserveRequest): Promise<Reservation>;
}

/** The most prompt tokens `prompt` can be: its UTF-8 bytes, at most the model's context. */
export function promptTokenBound(prompt: string, contextLength: number | null): number {
  const bytes = Buffer.byteLength(prompt, 'utf8');
  return contextLength === null ? bytes : Math.min(bytes, contextLength);
}

export class Metering {
  constructor(
    private readonly billing: Reserver,
    private readonly publisher: UsagePublisher,
    private readonly log: Logger,
  ) {}

  /**
   * Reserves the request's maximum cost.
   * Throws billing's refusal as a coded GraphQL error; nothing is held then.
   */
  async begin(caller: Caller, prepared: PreparedCompletion): Promise<MeteredRequest> {
    const { model, prompt } = prepared;
    const userId = caller.identity.sub;
    if (!userId) throw new TypeError('Metering.begin expects a signed-in caller (prepareCompletion refuses anonymous ones)');
    const reservationId = randomUUID();
    await this.billing.reserve(caller.identityHeader, {
      reservationId,
      model: model.id,
      promptTokens: promptTokenBound(prompt, model.contextLength),
      maxCompletionTokens: prepared.sampling.max_tokens,
    });
    return new MeteredRequest(this, { caller, userId, model, prompt, reservationId });
  }

  /**
   * Runs an embedding call metered like a completion: its prompt tokens are
   * reserved before any GPU work (each text's UTF-8 bytes, at most the model's `max_tokens`
   * — the tokens it reads), then billed as counted: each text's r50k tokens
   * after the embedding backend's normalisation (NFKC, lower case), at most
   * `max_tokens`; output 0. A failed call bills nothing.
   */
  async embedding<T>(caller: Caller, model: ModelInfo, texts: readonly string[], run: (reserved: Promise<void>) => Promise<T>): Promise<T> {
    const userId = caller.identity.sub;
    if (!userId) throw new TypeError('Metering.embedding expects a signed-in caller');
    const cap = model.maxInputTokens ?? Number.POSITIVE_INFINITY;
    const sum = (count: (text: string) => number) =>
      Math.min(
        MAX_TOKENS_PER_EVENT,
        texts.reduce((total, text) => total + Math.min(count(text), cap), 0),
      );
    const facts: RequestFacts = { caller, userId, model, prompt: '', reservationId: randomUUID() };
    // `run` may queue the texts while the reservation is pending; it must not call the GPU before `reserved` resolves.
    const reserved = this.billing
      .reserve(caller.identityHeader, { reservationId: facts.reservationId, model: model.id, promptTokens: sum((text) => Buffer.byteLength(text, 'utf8')), maxCompletionTokens: 0 })
      .then(() => true as const);
    const cleared = reserved.then(() => undefined);
    // Its refusal is thrown below; `run` may never look at it (a batch that failed first).
    cleared.catch(() => undefined);
    let result: T;
    try {
      result = await run(cleared);
    } catch (error) {
      // A refused reservation held nothing; a failure after it was held releases it.
      if (await reserved.catch(() => false)) this.record(facts, ZERO_USAGE, 'ERROR');
      throw (await reserved.then(
        () => error,
        (refusal: unknown) => refusal,
      )) as Error;
    }
    // As the backend reads it: normalised, and no further than its tokens can reach (32 characters per kept token).
    const read = (text: string) =>
      Number.isFinite(cap)
        ? text
            .normalize('NFKC')
            .toLowerCase()
            .slice(0, cap * 32)
        : text.normalize('NFKC').toLowerCase();
    const tokens = sum((text) => countTokens(read(text)));
    this.record(facts, { promptTokens: tokens, completionTokens: 0, totalTokens: tokens, promptCacheHitTokens: 0, promptCacheMissTokens: tokens }, 'STOP');
    return result;
  }

  /** Waits (at most `timeoutMs`) for events being published; true when all are done. */
  drain(timeoutMs: number): Promise<boolean> {
    return this.publisher.drain(timeoutMs);
  }

  /** Called once per request by MeteredRequest.end. */
  record(request: RequestFacts, usage: Usage, finishReason: FinishReason): void {
    const event: UsageEvent = {
      eventId: request.caller.usageEventId ?? randomUUID(),
      reservationId: request.reservationId,
      userId: request.userId,
      keyId: request.caller.identity.keyId ?? null,
      model: request.model.id,
      modelVersion: request.model.version,
      ...usageFields(usage),
      finishReason,
      endedAt: Date.now(),
    };
    const { billedShare } = request.caller;
    try {
      // A share is worked out again on each publishing attempt: billedShare is idempotent (one answer per run).
      if (billedShare) this.publisher.publishWorkedOut(event, async () => ({ ...event, ...usageFields(await billedShare(usage)) }));
      else this.publisher.publish(event);
    } catch (error) {
      // An invalid event is our bug; the reservation expires unbilled rather than failing the client's request.
      this.log.error('USAGE EVENT INVALID: not published; its reservation will expire unbilled', { error: (error as Error).message, event });
    }
  }
}

/** The usage event's numbers of `usage`. */
function usageFields(usage: Usage): Pick<UsageEvent, 'promptTokens' | 'promptCacheHitTokens' | 'promptCacheMissTokens' | 'completionTokens'> {
  return { promptTokens: usage.promptTokens, promptCacheHitTokens: usage.promptCacheHitTokens, promptCacheMissTokens: usage.promptCacheMissTokens, completionTokens: usage.completionTokens };
}

interface RequestFacts {
  caller: Caller;
  userId: string;
  model: ModelInfo;
  prompt: string;
  reservationId: string;
}

/** One reserved request, from reservation to its one usage event. */
export class MeteredRequest {
  private readonly outputs: GenerationOutput[] = [];
  private sentText = '';
  private usage: Usage | undefined;

  constructor(
    private readonly metering: Metering,
    readonly facts: RequestFacts,
  ) {}

  get reservationId(): string {
    return this.facts.reservationId;
  }

  get ended(): boolean {
    return this.usage !== undefined;
  }

  /** A response of the GPU server (its text and counts). */
  received(output: GenerationOutput): void {
    this.outputs.push(output);
  }

  /**
   * The generation was started again from the start (its GPU server was lost): the responses so far are
   * superseded, and the new run's counts are the request's. Text already sent stays sent, and so does the
   * prompt's count, for a request that ends before the new run reports its own.
   */
  restarted(): void {
    const counted = this.outputs.filter((o) => o.inputTokens !== null).at(-1);
    this.outputs.length = 0;
    if (counted) this.outputs.push({ ...counted, text: '', outputTokens: null });
  }

  /** Text that reached the client. */
  sent(text: string): void {
    this.sentText += text;
  }

  /**
   * Ends the request: the first call works out the usage, publishes the
   * event and returns the usage; later calls return the same usage and
   * publish nothing. `finished`: the server's final response arrived.
   */
  end(finishReason: FinishReason, finished: boolean): Usage {
    if (this.usage) return this.usage;
    const usage = this.measure(finished);
    this.usage = usage;
    this.metering.record(this.facts, usage, finishReason);
    return usage;
  }

  /**
   * Ends a request answered from the response cache, which touched no GPU:
   * `free` bills nothing; `cache-hit` bills the replayed prompt and text alike
   * as prompt tokens at the cache-hit price (the event says so in its parts).
   */
  endCached(hit: { promptTokens: number; completionTokens: number }, billing: ResponseCacheBilling): Usage {
    if (this.usage) return this.usage;
    const tokens = billing === 'free' ? 0 : hit.promptTokens + hit.completionTokens;
    this.usage = { promptTokens: tokens, completionTokens: 0, totalTokens: tokens, promptCacheHitTokens: tokens, promptCacheMissTokens: 0 };
    this.metering.record(this.facts, this.usage, 'STOP');
    return this.usage;
  }

  private measure(finished: boolean): Usage {
    const { prompt } = this.facts;
    // The prompt count and its cache hit come from the last response that reported a prompt count.
    const counted = this.outputs.filter((o) => o.inputTokens !== null).at(-1);
    const outputCounts = this.outputs.map((o) => o.outputTokens).filter((n): n is number => n !== null);
    let promptTokens: number;
    let completionTokens: number;
    if (finished) {
      promptTokens = counted?.inputTokens ?? countTokens(prompt);
      completionTokens = outputCounts.length ? outputCounts.reduce((a, b) => a + b, 0) : countTokens(this.outputs.map((o) => o.text).join(''));
    } else {
      promptTokens = counted?.inputTokens ?? 0;
      completionTokens = countTokens(this.sentText);
    }
    const promptCacheHitTokens = Math.min(counted?.cachedPromptTokens ?? 0, promptTokens);
    return {
      promptTokens,
      completionTokens,
      totalTokens: promptTokens + completionTokens,
      promptCacheHitTokens,
      promptCacheMissTokens: promptTokens - promptCacheHitTokens,
    };
  }
}
