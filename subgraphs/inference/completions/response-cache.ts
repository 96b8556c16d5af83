/**
 * The response cache for repeatable completions (issue 8): a request whose
 * output is determined by its input — temperature 0 (greedy), or a fixed
 * seed — is answered from Redis when the same model version saw the same
 * rendered prompt with the same sampling parameters before. A hit touches no
 * GPU.
 *
 * A request is cached when the caller opts in (`CompletionInput.cache`), or
 * when it says nothing and the model allows it (config.pbtxt parameter
 * `response_cache: "true"`); `cache: false` always bypasses. Entries are
 * scoped to the user unless the operator shares them
 * (INFERENCE_RESPONSE_CACHE_SHARED): a shared entry tells a caller that
 * someone sent this exact prompt, so sharing is off by default. Only whole,
 * successful results are stored (STOP or LENGTH), never a cancelled or failed
 * one.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import type { SamplingParameters } from './generation-tensors';
import type { ModelInfo } from '../models/model-catalog';

export type CacheStatus = 'HIT' | 'MISS' | 'BYPASS';

export interface CachedCompletion {
  text: string;
  finishReason: 'STOP' | 'LENGTH';
  promptTokens: number;
  completionTokens: number;
}

export interface ResponseCacheSettings {
  /** How long an entry lives. */
  ttlSeconds: number;
  /** Share entries between users (off: each user has their own). */
  shared: boolean;
  /** Largest text stored, in characters; longer results are not cached. */
  maxTextChars: number;
}

/** Whether a request's output is fully determined by its input. */
export function isRepeatable(sampling: SamplingParameters): boolean {
  return sampling.temperature === 0 || sampling.seed !== undefined;
}

export class ResponseCache {
  constructor(
    private readonly redis: Redis,
    private readonly settings: ResponseCacheSettings,
  ) {}

  /**
   * The entry's key, or null when the request is not to be cached: not
   * repeatable, the caller opted out, or neither the caller nor the model opted in.
   */
  keyFor(userId: string, model: ModelInfo, prompt: string, sampling: SamplingParameters, optIn: boolean | null | undefined): string | null {
    const wanted = optIn ?? model.responseCache;
    if (!wanted || !isRepeatable(sampling)) return null;
    // Sorted keys: the same parameters always hash the same, whatever order they were set in.
    const parameters = JSON.stringify(sampling, Object.keys(sampling).sort());
    const digest = createHash('sha256')
      .update(JSON.stringify([model.id, model.version, prompt, parameters]))
      .digest('hex');
    return `inference:response:${this.settings.shared ? 'shared' : userId}:${digest}`;
  }

  async get(key: string): Promise<CachedCompletion | null> {
    const raw = await this.redis.get(key);
    if (!raw) return null;
    const value = JSON.parse(raw) as CachedCompletion;
    return typeof value.text === 'string' && (value.finishReason === 'STOP' || value.finishReason === 'LENGTH') ? value : null;
  }

  async put(key: string, value: CachedCompletion): Promise<void> {
    if (value.text.length > this.settings.maxTextChars) return;
    await this.redis.set(key, JSON.stringify(value), 'EX', this.settings.ttlSeconds);
  }
}
