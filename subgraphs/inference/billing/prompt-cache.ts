/**
 * Prompt-cache accounting (issue 9 item 6), like DeepSeek's context caching:
 * the part of a prompt that the same user sent to the same model within
 * `ttlSeconds` is billed as cache-hit tokens, the rest as cache misses.
 *
 * What counts as "the same part": the rendered prompt cut at message
 * boundaries (messages[0..i] rendered with the model's chat template, without
 * the opened assistant turn; the first and the last few, see
 * RECENT_BOUNDARIES) and the whole prompt. Each such prefix is kept as
 * `inference:prompt-prefix:<user>:<model>:<sha256>` with the TTL after a
 * request whose prompt was billed; a new request's hit is the longest of its
 * prefixes found. A continued conversation thus hits on everything up to its
 * previous user turn, and the same prompt sent again hits whole.
 *
 * Token split: the model's tokenizer lives on the GPU server, which reports
 * only the prompt's total, so the hit is that total in proportion to bytes:
 * floor(promptTokens × hitBytes / promptBytes). It is an integer estimate
 * that never exceeds the total (the rest is the miss), and exact for a whole
 * prompt sent again.
 */
import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import { renderChat, type ChatMessage } from '../completions/chat-template';

export const PROMPT_PREFIX_KEY_PREFIX = 'inference:prompt-prefix:';

export interface PromptPrefix {
  /** UTF-8 length of the prefix. */
  bytes: number;
  /** sha256 of the prefix, hex. */
  hash: string;
}

/**
 * The prefixes of `prompt` at message boundaries, shortest first, ending with
 * the whole prompt. A boundary whose rendering is not a true prefix of the
 * prompt (a template that renders a shorter conversation differently) or that
 * the template refuses to render (templates may insist on role order) is left
 * out: only text the model really saw first may count as cached.
 */
export function promptPrefixes(template: string | undefined, messages: readonly ChatMessage[], prompt: string): PromptPrefix[] {
  const ends = new Set<number>([prompt.length]);
  for (const i of boundaries(messages.length)) {
    let partial: string;
    try {
      partial = renderChat(template, messages.slice(0, i), { addGenerationPrompt: false });
    } catch {
      continue;
    }
    if (partial.length > 0 && prompt.startsWith(partial)) ends.add(partial.length);
  }
  // One pass over the prompt: each boundary's hash is a copy of the running hash.
  const hash = createHash('sha256');
  const prefixes: PromptPrefix[] = [];
  let from = 0;
  let bytes = 0;
  for (const end of [...ends].sort((a, b) => a - b)) {
    const piece = prompt.slice(from, end);
    hash.update(piece, 'utf8');
    bytes += Buffer.byteLength(piece, 'utf8');
    prefixes.push({ bytes, hash: hash.copy().digest('hex') });
    from = end;
  }
  return prefixes;
}

/**
 * Each boundary costs a rendering of the conversation up to it (about what
 * rendering the prompt costs), so a conversation is cut after its first
 * message (a shared system prompt) and after each of its last
 * RECENT_BOUNDARIES messages (a continued conversation meets its previous
 * prompt two messages back), not everywhere: at every one of 256 long
 * messages it would block the process for a fifth of a second.
 */
export const RECENT_BOUNDARIES = 4;

/** Message counts to cut after, from 1 to `count`. */
function boundaries(count: number): number[] {
  const recent = Array.from({ length: Math.min(count, RECENT_BOUNDARIES) }, (_, i) => count - i);
  return [...new Set([1, ...recent])].filter((n) => n <= count);
}

/** floor(promptTokens × hitBytes / promptBytes): the hit's share of the server's prompt count. */
export function cacheHitTokens(promptTokens: number, hitBytes: number, promptBytes: number): number {
  if (promptTokens <= 0 || hitBytes <= 0 || promptBytes <= 0) return 0;
  return Math.floor((promptTokens * Math.min(hitBytes, promptBytes)) / promptBytes);
}

export class PromptCache {
  constructor(
    private readonly redis: Redis,
    readonly ttlSeconds: number,
  ) {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) throw new RangeError(`PromptCache expects a TTL of at least 1 second, but got ${ttlSeconds}`);
  }

  /** The UTF-8 length of the longest of `prefixes` this user sent this model within the TTL; 0 when none. */
  async longestSeen(userId: string, model: string, prefixes: readonly PromptPrefix[]): Promise<number> {
    if (prefixes.length === 0) return 0;
    const seen = await this.redis.mget(...prefixes.map((p) => this.key(userId, model, p)));
    for (let i = prefixes.length - 1; i >= 0; i--) if (seen[i] !== null) return prefixes[i].bytes;
    return 0;
  }

  /** Keeps every prefix for the TTL from now (a prefix seen again lives on). */
  async remember(userId: string, model: string, prefixes: readonly PromptPrefix[]): Promise<void> {
    if (prefixes.length === 0) return;
    const multi = this.redis.multi();
    for (const p of prefixes) multi.set(this.key(userId, model, p), '1', 'EX', this.ttlSeconds);
    const results = await multi.exec();
    const failed = results?.find(([error]) => error);
    if (!results || failed) throw new Error(`the prompt prefixes could not be stored: ${failed?.[0]?.message ?? 'the transaction was aborted'}`);
  }

  private key(userId: string, model: string, prefix: PromptPrefix): string {
    return `${PROMPT_PREFIX_KEY_PREFIX}${userId}:${model}:${prefix.hash}`;
  }
}
