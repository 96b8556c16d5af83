/**
 * Assembles a streamed answer (`completionStream` or `answerStream`) from its
 * chunks. Chunks carry their position (`index`), so a chunk that arrives twice
 * is ignored and one that arrives early waits for the gap before it: the text
 * shown is always a prefix of the text generated. The last chunk carries the
 * finish reason and the usage; an ERROR finish carries the error.
 */
export type FinishReason = 'STOP' | 'LENGTH' | 'CANCELLED' | 'ERROR';

export interface StreamUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
}

export interface StreamChunk {
  index: number;
  delta: string;
  finishReason?: FinishReason | null;
  usage?: StreamUsage | null;
  error?: { code: string; message: string } | null;
}

export interface AssembledStream {
  text: string;
  /** The index of the next chunk to append. */
  next: number;
  /** Chunks that arrived before a gap, by index. */
  early: ReadonlyMap<number, StreamChunk>;
  finishReason: FinishReason | null;
  usage: StreamUsage | null;
  error: { code: string; message: string } | null;
}

export const emptyStream: AssembledStream = { text: '', next: 0, early: new Map(), finishReason: null, usage: null, error: null };

/** The stream with `chunk` taken in (a new object; the old one is unchanged). */
export function addChunk(stream: AssembledStream, chunk: StreamChunk): AssembledStream {
  if (chunk.index < stream.next || stream.early.has(chunk.index)) return stream;
  const early = new Map(stream.early).set(chunk.index, chunk);
  let { text, next, finishReason, usage, error } = stream;
  for (let ready = early.get(next); ready; ready = early.get(next)) {
    early.delete(next);
    text += ready.delta;
    finishReason = ready.finishReason ?? finishReason;
    usage = ready.usage ?? usage;
    error = ready.error ?? error;
    next += 1;
  }
  return { text, next, early, finishReason, usage, error };
}

/** True once the last chunk has been taken in. */
export function isFinished(stream: AssembledStream): boolean {
  return stream.finishReason !== null;
}
