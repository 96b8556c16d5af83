/**
 * Prefix-affinity routing. Each gpu-server keeps its own prefix KV cache
 * (gpu-server/backends/causal-lm/prefix-cache.ts), so a conversation's next
 * turn reuses its earlier prompt only on the endpoint that served it; spread
 * by load alone over N endpoints, a turn lands there about 1 time in N.
 * The tier therefore remembers, per conversation, the endpoint that last
 * served it, and sends the next turn there — unless that endpoint is busier
 * than the least-loaded one by more than a margin, when a cache hit is not
 * worth the wait (router.ts, `withAffinity`).
 *
 * A conversation is known by its key: the user, the model, and its first two
 * messages (the system prompt and the first question, or the first exchange),
 * which every later turn repeats verbatim. The user is part of it so that
 * many users sharing one system prompt still spread over the endpoints (each
 * endpoint computes that shared prefix once and caches it).
 */
import { createHash } from 'node:crypto';
import type { ChatMessage } from '../completions/chat-template';

/** The affinity key of a conversation (see the file comment). */
export function conversationKey(userId: string, model: string, messages: readonly ChatMessage[]): string {
  return createHash('sha256')
    .update(JSON.stringify([userId, model, messages.slice(0, 2)]))
    .digest('base64');
}

/** The endpoint (address) that last served each key, the `capacity` most recently used keys kept. */
export class AffinityTable {
  private readonly last = new Map<string, string>();

  constructor(private readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`AffinityTable expects a capacity of at least 1 key, but got ${capacity}`);
  }

  get(key: string): string | undefined {
    return this.last.get(key);
  }

  /** Records that `address` serves `key` now; the least recently recorded key goes when full. */
  set(key: string, address: string): void {
    this.last.delete(key);
    this.last.set(key, address);
    if (this.last.size > this.capacity) this.last.delete(this.last.keys().next().value!);
  }

  get size(): number {
    return this.last.size;
  }
}
