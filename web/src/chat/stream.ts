/**
 * Assembles a streamed answer (`completionStream` or `answerStream`) from its
 * chunks. Chunks carry their position (`index`), so a chunk that arrives twice
 * is ignored and one that arrives early waits for the gap before it: the text
 * shown is always a prefix of the text generated. The last chunk carries the
 * finish reason and the usage; an ERROR finish carries the error.
 *
 * A resumable completion stream's chunks also carry where their text begins
 * (`offset`, counted from the start of the text in every run of the stream),
 * and are placed by it instead: a run that starts again — resumed by the page
 * at the text it has, or subscribed again by graphql-ws after a lost socket,
 * from where the page first asked — splits its text into other chunks, and
 * only its text past what is shown is taken.
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
  /** Where `delta` begins in the whole text (completionStream); placed by it when present. */
  offset?: number | null;
  delta: string;
  finishReason?: FinishReason | null;
  usage?: StreamUsage | null;
  error?: { code: string; message: string } | null;
}

export interface AssembledStream {
  text: string;
  /** The index of the next chunk to append (chunks placed by index). */
  next: number;
  /** Chunks that arrived before a gap, by index (or by offset, for chunks placed by offset). */
  early: ReadonlyMap<number, StreamChunk>;
  finishReason: FinishReason | null;
  usage: StreamUsage | null;
  error: { code: string; message: string } | null;
}

export const emptyStream: AssembledStream = { text: '', next: 0, early: new Map(), finishReason: null, usage: null, error: null };

/** The stream with `chunk` taken in (a new object; the old one is unchanged). */
export function addChunk(stream: AssembledStream, chunk: StreamChunk): AssembledStream {
  if (typeof chunk.offset === 'number') return placeByOffset(stream, chunk, chunk.offset);
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

function placeByOffset(stream: AssembledStream, chunk: StreamChunk, offset: number): AssembledStream {
  if (offset > stream.text.length) return { ...stream, early: new Map(stream.early).set(offset, chunk) };
  let { text, finishReason, usage, error } = stream;
  const early = new Map(stream.early);
  for (let ready: [number, StreamChunk] | undefined = [offset, chunk]; ready; ready = [...early].find(([at]) => at <= text.length)) {
    const [at, next] = ready;
    early.delete(at);
    text += next.delta.slice(text.length - at);
    finishReason = next.finishReason ?? finishReason;
    usage = next.usage ?? usage;
    error = next.error ?? error;
  }
  return { ...stream, text, early, finishReason, usage, error };
}

/**
 * The stream as a run resumed after a cut goes on with it: its text kept, the
 * cut run's ending (a GPU_UNAVAILABLE last chunk) dropped.
 */
export function resumable(stream: AssembledStream): AssembledStream {
  return { ...stream, finishReason: null, usage: null, error: null };
}

/** True once the last chunk has been taken in. */
export function isFinished(stream: AssembledStream): boolean {
  return stream.finishReason !== null;
}
