/**
 * `complete` with an idempotency key, as Stripe and OpenAI-style APIs take
 * one (`Idempotency-Key`): a client that lost its answer — its connection
 * cut, a gateway or an inference replica lost under it — sends the request
 * again with the same key and gets one answer, generated and billed once.
 *
 * - The first request with a key (per user) runs, under a lease it renews;
 *   its result is kept (`INFERENCE_IDEMPOTENCY_TTL_SECONDS`).
 * - A retry with the same input gets that result again, billed nothing more.
 * - A retry while the first still runs waits for it (up to `waitMs`, then
 *   CONFLICT with a retry hint: OpenAI's SDKs retry a 409 by themselves).
 * - If the first's process died, its lease lapses and the retry runs it. Both
 *   runs' usage events carry the same id (the key's, usageEventIdOf), so
 *   billing charges once even if the first had published its event.
 * - The same key with a different input is BAD_USER_INPUT: a key names one
 *   request.
 * - A request that failed frees its key, so a retry runs again, as the key's
 *   next run with a usage event of its own: the failed run published one for
 *   the tokens it produced.
 *
 * A live runner that could not renew its lease for a whole lease (stalled,
 * or cut off from Redis) loses the key: the retry runs the request too, which
 * costs GPU time, but the same usage event id keeps it billed once (the
 * second run's hold is released when its reservation expires).
 */
import { createHash, randomUUID } from 'node:crypto';
import { codedError, ErrorCode } from '../../../lib/errors';
import type { Logger } from '../../../lib/log';
import type { Caller } from '../billing/usage-billing';
import type { CompletionInput } from './completion-request';
import type { Completion } from './completions';
import type { IdempotencyStore } from './idempotency-store';

/** The longest idempotency or stream key (resumable-streams.ts). */
export const MAX_KEY_CHARS = 255;
/** How often a waiting retry looks whether the first request finished. */
const POLL_MS = 100;

export interface IdempotentCompletionsOptions {
  /** Longest a retry waits for the first request with its key before CONFLICT. */
  waitMs: number;
  log: Logger;
}

export class IdempotentCompletions {
  constructor(
    private readonly completions: { complete(caller: Caller, input: CompletionInput): Promise<Completion> },
    private readonly store: IdempotencyStore,
    private readonly options: IdempotentCompletionsOptions,
  ) {}

  async complete(caller: Caller, input: CompletionInput, idempotencyKey?: string | null): Promise<Completion> {
    const userId = caller.identity.sub;
    // Without a key, or without a user to scope it to (complete refuses that caller itself), there is nothing to remember.
    if (idempotencyKey === undefined || idempotencyKey === null || !userId) return this.completions.complete(caller, input);
    if (idempotencyKey.length === 0 || idempotencyKey.length > MAX_KEY_CHARS) {
      throw codedError(ErrorCode.BadUserInput, `idempotencyKey expects 1 to ${MAX_KEY_CHARS} characters, but got ${idempotencyKey.length}`, { field: 'idempotencyKey' });
    }
    const fingerprint = fingerprintOf(input);
    const token = randomUUID();
    const deadline = Date.now() + this.options.waitMs;
    for (;;) {
      const claim = await this.store.claim(userId, idempotencyKey, fingerprint, token);
      if (claim.kind === 'run') return this.run({ ...caller, usageEventId: usageEventIdOf(userId, idempotencyKey, claim.epoch) }, input, userId, idempotencyKey, token);
      if (claim.kind === 'done') return JSON.parse(claim.result) as Completion;
      if (claim.kind === 'conflict') {
        throw codedError(
          ErrorCode.BadUserInput,
          `idempotencyKey ${JSON.stringify(idempotencyKey)} was first used for a different request: expected the same input as that request, or a new key for a new request`,
          { field: 'idempotencyKey' },
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const retryAfter = Math.max(1, Math.ceil(claim.leaseLeftMs / 1000));
        throw codedError(
          ErrorCode.Conflict,
          `the first request with idempotencyKey ${JSON.stringify(idempotencyKey)} is still running after ${this.options.waitMs} ms of waiting for it; send this one again later (in about ${retryAfter} s) to get its answer`,
          { field: 'idempotencyKey', retryAfter },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, left, claim.leaseLeftMs + 1)));
    }
  }

  /** Runs the request under the key's lease, renewed until it ends; keeps its result, or frees the key if it failed. */
  private async run(caller: Caller, input: CompletionInput, userId: string, key: string, token: string): Promise<Completion> {
    const { log } = this.options;
    const renewal = setInterval(() => {
      this.store.renew(userId, key, token).catch((error: Error) => log.warn('idempotency lease not renewed', { error: error.message }));
    }, this.store.settings.leaseMs / 3);
    try {
      const completion = await this.completions.complete(caller, input);
      // The answer is the caller's whether or not it is kept; a retry that finds none runs again.
      try {
        if (!(await this.store.finish(userId, key, token, JSON.stringify(completion)))) {
          log.warn('idempotent completion not kept: its lease lapsed and another request took the key over', { id: completion.id });
        }
      } catch (error) {
        log.warn('idempotent completion not kept', { error: (error as Error).message, id: completion.id });
      }
      return completion;
    } catch (error) {
      await this.store.abandon(userId, key, token).catch(() => undefined);
      throw error;
    } finally {
      clearInterval(renewal);
    }
  }
}

/**
 * The usage event id of a run — (userId, key, epoch) for an idempotency key's, (userId, stream id, run, 'stream')
 * for a resumable stream's: the same for whoever runs it (a runner and the one that took its lapsed lease over), so
 * billing, which settles each id once, charges it once. The two shapes cannot name the same event whatever the key
 * holds: the idempotency shape ends in a number, the stream's in 'stream'. A UUID (version 8, from SHA-256).
 */
export function usageEventIdOf(...parts: [string, string, number] | [string, string, number, 'stream']): string {
  const hex = createHash('sha256').update(parts.join('\n')).digest('hex');
  const variant = ((Number.parseInt(hex[16], 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** What names a request's input: a hash of it as canonical JSON (keys sorted, null members left out), so the same input always fingerprints the same. */
export function fingerprintOf(input: CompletionInput): string {
  return createHash('sha256').update(canonicalJson(input)).digest('hex');
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_, member: unknown) => {
    if (member === null || typeof member !== 'object' || Array.isArray(member)) return member;
    const sorted: Record<string, unknown> = {};
    for (const name of Object.keys(member).sort()) {
      const field = (member as Record<string, unknown>)[name];
      if (field !== null && field !== undefined) sorted[name] = field;
    }
    return sorted;
  });
}
