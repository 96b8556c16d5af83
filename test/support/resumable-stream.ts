/**
 * A client of a resumable `completionStream` (subgraphs/inference/completions/resumable-streams.ts),
 * as the README describes one: it subscribes with a stream key, and when the
 * stream is cut — the socket closed under it (its gateway process died),
 * the gateway asked it to subscribe again (SERVICE_UNAVAILABLE: the inference
 * replica died), the subgraph could not be reached for the moment, or the
 * generation's GPU server was lost (GPU_UNAVAILABLE) — or the socket cannot be opened yet, it subscribes again,
 * on a fresh socket, with the same key and `resumeAt` the text it has.
 */
import type { Client } from 'graphql-ws';

export interface StreamedChunk {
  delta: string;
  /** Where the delta begins in the stream's text, when the operation asks for it: checked against the text received. */
  offset?: number;
  finishReason: string | null;
  error: { code: string; message?: string } | null;
}

export interface FollowedStream<C extends StreamedChunk> {
  /** The text of every run, in order: what a reader of the stream was shown. */
  text: string;
  /** The chunk that ended the stream (finishReason set), when one did. */
  last?: C;
  /** What cut each run that was resumed: `CLOSE_<code>` for a closed socket, else an error code. */
  cuts: string[];
  /** The characters of text the client had at each resume (its resumeAt). */
  resumedAt: number[];
  /** When the stream did not end: the codes of the last attempt's failure (and SUBGRAPH_UNAVAILABLE reasons). */
  failure?: { codes: string[]; reasons: string[] };
}

/** Errors after which the stream goes on by resuming it: nothing about the request was wrong (TRANSPORT: no socket could be opened). */
const RESUMABLE = new Set(['SERVICE_UNAVAILABLE', 'SUBGRAPH_UNAVAILABLE', 'GPU_UNAVAILABLE', 'STREAM_ENDED_EARLY', 'TRANSPORT']);

type GraphQLErrors = ReadonlyArray<{ extensions?: Record<string, unknown> | null }>;

/** The codes of GraphQL errors (extensions.code), and the SUBGRAPH_UNAVAILABLE reasons among them. */
export function codesOf(errors: GraphQLErrors | undefined): { codes: string[]; reasons: string[] } {
  return {
    codes: (errors ?? []).map((e) => String(e.extensions?.code ?? 'NO_CODE')),
    reasons: (errors ?? []).map((e) => e.extensions?.reason).filter((r): r is string => typeof r === 'string'),
  };
}

/**
 * Follows one stream to its end over up to `attempts` subscriptions, each on a socket from `connect` (disposed
 * after). `operation(resumeAt)` is the subscription to send, resumed at that many characters. A resume is sent
 * after `pauseMs` times the attempts so far, so a replica on its way back is given time.
 */
export async function followStream<C extends StreamedChunk>(
  connect: () => Client,
  operation: (resumeAt: number) => { query: string; variables: Record<string, unknown> },
  field: string,
  options: { attempts: number; pauseMs: number; signal?: AbortSignal; onText?: (text: string) => void },
): Promise<FollowedStream<C>> {
  const followed: FollowedStream<C> = { text: '', cuts: [], resumedAt: [] };
  for (let attempt = 1; ; attempt++) {
    const failure = await followRun(connect(), operation(followed.text.length), field, followed, options);
    if (!failure) return followed;
    const resumable = failure.codes.length > 0 && failure.codes.every((code) => RESUMABLE.has(code) || code.startsWith('CLOSE_'));
    if (!resumable || attempt >= options.attempts || options.signal?.aborted) return { ...followed, failure };
    followed.cuts.push(failure.codes[0]);
    followed.resumedAt.push(followed.text.length);
    followed.last = undefined;
    await new Promise((resolve) => setTimeout(resolve, options.pauseMs * attempt));
  }
}

/** One subscription: adds its text to `followed`; the failure that cut it, or undefined when the stream ended well. */
async function followRun<C extends StreamedChunk>(
  client: Client,
  operation: { query: string; variables: Record<string, unknown> },
  field: string,
  followed: FollowedStream<C>,
  { signal, onText }: { signal?: AbortSignal; onText?: (text: string) => void },
): Promise<{ codes: string[]; reasons: string[] } | undefined> {
  // dispose() rejects with the socket's error when called while a connection attempt fails: the run's outcome is decided then.
  const dispose = () => Promise.resolve(client.dispose()).catch(() => undefined);
  const abort = () => void dispose();
  signal?.addEventListener('abort', abort);
  try {
    for await (const event of client.iterate<Record<string, C>>(operation)) {
      if (event.errors) return codesOf(event.errors);
      const chunk = event.data?.[field];
      if (!chunk) continue;
      if (chunk.offset !== undefined && chunk.offset !== followed.text.length) return { codes: [`OFFSET_${chunk.offset}_AFTER_${followed.text.length}_CHARACTERS`], reasons: [] };
      followed.text += chunk.delta;
      onText?.(followed.text);
      if (chunk.finishReason) {
        followed.last = chunk;
        return chunk.error ? { codes: [chunk.error.code], reasons: [] } : undefined;
      }
    }
    return { codes: [signal?.aborted ? 'ABORTED' : 'STREAM_ENDED_EARLY'], reasons: [] };
  } catch (error) {
    // graphql-ws throws an operation's error message as an array of GraphQL errors, a closed socket as a CloseEvent.
    if (Array.isArray(error)) return codesOf(error as GraphQLErrors);
    const close = (error as { code?: unknown } | null)?.code;
    return { codes: [typeof close === 'number' ? `CLOSE_${close}` : 'TRANSPORT'], reasons: [] };
  } finally {
    signal?.removeEventListener('abort', abort);
    await dispose();
  }
}
