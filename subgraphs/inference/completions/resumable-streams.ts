/**
 * `completionStream` with a stream key: a stream that survives losing the
 * process it ran on. A client whose stream was cut — its gateway process
 * died (the socket closed), or the inference replica under it did (the
 * gateway's SERVICE_UNAVAILABLE event, "subscribe again") — subscribes again
 * with the same key, the same input and `resumeAt`, the characters of text it
 * already has; the new run goes on from there.
 *
 * How a run goes on from where another stopped: every run of a key generates
 * with the same seed (the client's, or one the first run chose and recorded)
 * on the same model version, and the same seed with the same input and
 * version gives the same text. The new run generates the text again from
 * the start, sends nothing the client has, and streams the rest. It costs
 * the GPU the tokens generated again, not the client: each run is billed only
 * for what no run of the key was billed for (stream-record-store.ts), under
 * a usage event of its own (named by the stream and the run, usageEventIdOf:
 * the stream's id, not its key, so a key used again once its record expired
 * cannot name an event billing has settled already).
 *
 * - The same key with another input is BAD_USER_INPUT: a key names one stream.
 * - A resume of a key that never began (or expired,
 *   INFERENCE_STREAM_RESUME_TTL_SECONDS after its last run) is BAD_USER_INPUT.
 * - A resume after the model's version changed is CONFLICT: its text cannot be
 *   made again.
 * - A keyed stream skips the response cache: a cached answer is billed apart
 *   from the stream's runs.
 */
import { codedError, ErrorCode } from '../../../lib/errors';
import type { Usage } from '../../../lib/usage-events';
import type { Caller } from '../billing/usage-billing';
import type { ModelInfo } from '../models/model-catalog';
import type { CompletionInput } from './completion-request';
import type { CompletionChunk, StreamRun } from './completions';
import { fingerprintOf, MAX_KEY_CHARS, usageEventIdOf } from './idempotent-completions';
import type { StreamRecordStore } from './stream-record-store';

export class ResumableStreams {
  constructor(
    private readonly completions: { stream(caller: Caller, input: CompletionInput, run?: StreamRun): Promise<AsyncGenerator<CompletionChunk>> },
    private readonly store: StreamRecordStore,
  ) {}

  async stream(caller: Caller, input: CompletionInput, streamKey?: string | null, resumeAt?: number | null): Promise<AsyncGenerator<CompletionChunk>> {
    const bad = (field: string, message: string) => codedError(ErrorCode.BadUserInput, `${field} ${message}`, { field });
    if (streamKey === undefined || streamKey === null) {
      if (resumeAt) throw bad('resumeAt', 'expects a streamKey beside it (the key the stream began with), but got none');
      return this.completions.stream(caller, input);
    }
    if (streamKey.length === 0 || streamKey.length > MAX_KEY_CHARS) throw bad('streamKey', `expects 1 to ${MAX_KEY_CHARS} characters, but got ${streamKey.length}`);
    const from = resumeAt ?? 0;
    if (!Number.isInteger(from) || from < 0) throw bad('resumeAt', `expects an integer of at least 0 (characters of text already received), but got ${from}`);
    const userId = caller.identity.sub;
    // Without a user to scope the key to there is no stream to resume: `stream` refuses that caller itself.
    if (!userId) return this.completions.stream(caller, input);
    const fingerprint = fingerprintOf(input);
    return this.completions.stream(caller, input, {
      resumeAt: from,
      claim: async (model: ModelInfo, seed: number) => {
        const claim = await this.store.begin(userId, streamKey, { fingerprint, seed, version: model.version, resuming: from > 0 });
        if (claim.kind === 'missing') {
          throw bad(
            'streamKey',
            `${JSON.stringify(streamKey)} names no stream to resume (it never began, or its last run was more than ${this.store.ttlMs / 1000} s ago): expected the key of a stream begun with it, or resumeAt 0 to begin one`,
          );
        }
        if (claim.kind === 'conflict') {
          throw bad('streamKey', `${JSON.stringify(streamKey)} was first used for a different stream: expected the same input as that stream, or a new key for a new stream`);
        }
        if (claim.version !== model.version) {
          throw codedError(
            ErrorCode.Conflict,
            `the stream ${JSON.stringify(streamKey)} began on version ${claim.version} of ${model.id}, which now serves version ${model.version}: its text cannot be made again, so it cannot be resumed; begin a new stream`,
            { field: 'streamKey', model: model.id },
          );
        }
        return {
          seed: claim.seed,
          caller: {
            ...caller,
            usageEventId: usageEventIdOf(userId, claim.streamId, claim.run, 'stream'),
            billedShare: async (usage: Usage): Promise<Usage> => {
              const share = await this.store.settle(userId, streamKey, claim.streamId, claim.run, usage);
              return {
                ...share,
                promptCacheMissTokens: share.promptTokens - share.promptCacheHitTokens,
                totalTokens: share.promptTokens + share.completionTokens,
              };
            },
          },
        };
      },
    });
  }
}
