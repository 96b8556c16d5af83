/**
 * POST /v1/chat/completions: the `complete` mutation answered as a
 * `chat.completion`, or, with `stream: true`, the `completionStream`
 * subscription answered as Server-Sent Events of `chat.completion.chunk`s,
 * exactly as OpenAI sends them: a first chunk with the role, one per piece of
 * text (flushed as it comes), one with `finish_reason`, a usage chunk
 * (`choices: []`) when `stream_options.include_usage` asks, then
 * `data: [DONE]`. A client that closes the connection unsubscribes, which
 * cancels the generation on the GPU and bills the text sent, as on
 * graphql-ws.
 */
import type { ServerResponse } from 'node:http';
import type { GraphQLFormattedError } from 'graphql';
import type { GatewayContext } from '../auth/context';
import { fromGraphQLError, invalidRequest, OpenAiError } from './errors';
import type { GraphOperations } from './graph-operations';
import { CHAT_COMPLETION, CHAT_COMPLETION_STREAM } from './operations';
import { paramForChatField, parseChatCompletionRequest, type ChatCompletionRequest } from './protocol';
import { SseWriter } from './sse';
import { sendJson } from '../../lib/http-service';

interface GraphUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  promptCacheHitTokens: number;
  promptCacheMissTokens: number;
}

interface GraphModel {
  id: string;
  version: string;
}

interface Completion {
  id: string;
  text: string;
  finishReason: string;
  usage: GraphUsage;
  model: GraphModel;
}

interface CompletionChunk {
  id: string;
  delta: string;
  finishReason: string | null;
  usage: GraphUsage | null;
  error: { code: string; message: string } | null;
  model: GraphModel;
}

/** What the route needs of the graph. */
export type ChatGraph = Pick<GraphOperations, 'execute' | 'subscribe'>;

/** How long a finished stream waits for its upstream to end before unsubscribing. */
const UPSTREAM_END_WAIT_MS = 1_000;

/** OpenAI's finish reasons for the graph's; CANCELLED and ERROR never reach a client as a finish. */
const FINISH_REASONS: Record<string, string> = { STOP: 'stop', LENGTH: 'length' };

export interface ChatRouteOptions {
  /** How often an idle stream gets a keep-alive comment. */
  keepAliveMs: number;
  /** The request's Idempotency-Key header: a retry with the same key gets the first answer, generated and billed once. */
  idempotencyKey?: string;
}

export async function serveChatCompletion(graph: ChatGraph, res: ServerResponse, body: unknown, context: GatewayContext, options: ChatRouteOptions): Promise<void> {
  const request = parseChatCompletionRequest(body);
  const { keepAliveMs, idempotencyKey } = options;
  if (request.stream) {
    // A stream is not kept to be replayed, so a key could not make its retry safe: say so rather than ignore it.
    if (idempotencyKey !== undefined) {
      throw invalidRequest('Idempotency-Key', 'the Idempotency-Key header makes a retry of a whole completion safe; a stream (stream: true) is not kept to be replayed, so send it without the header');
    }
    return streamChatCompletion(graph, res, request, context, keepAliveMs);
  }
  const { data, headers } = await graph.execute(CHAT_COMPLETION, { input: request.input, idempotencyKey: idempotencyKey ?? null }, context, paramForChatField);
  const completion = data.complete as Completion;
  sendJson(
    res,
    200,
    {
      id: completionId(completion.id),
      object: 'chat.completion',
      created: nowSeconds(),
      model: completion.model.id,
      system_fingerprint: fingerprint(completion.model),
      choices: [{ index: 0, message: { role: 'assistant', content: completion.text, refusal: null }, logprobs: null, finish_reason: finishReason(completion.finishReason) }],
      usage: openAiUsage(completion.usage),
    },
    headers,
  );
}

async function streamChatCompletion(graph: ChatGraph, res: ServerResponse, request: ChatCompletionRequest, context: GatewayContext, keepAliveMs: number): Promise<void> {
  // Listened to before the subscription starts (admission waits on Redis): a client that leaves meanwhile ends it as
  // soon as it is admitted, not at its first token. A response closes after its end too: only one closed before its
  // end is a client that left.
  let clientGone = false;
  let close: (() => Promise<void>) | undefined;
  res.once('close', () => {
    clientGone = !res.writableFinished;
    if (clientGone) void close?.();
  });
  const stream = await graph.subscribe(CHAT_COMPLETION_STREAM, { input: request.input }, context, paramForChatField);
  // A failed unsubscribe still ended the subscription (graph-operations.ts), and no one is left to answer.
  close = () => stream.close().catch(() => undefined);
  let sse: SseWriter | undefined;
  let finished = false;
  try {
    if (clientGone) return;
    // The answer's status waits for the first event, so a refusal that comes as that event (INSUFFICIENT_BALANCE,
    // a model not ready: the subgraph reserves before generating) is answered with its status, 402 or 503. But
    // not longer than a keep-alive interval: a request queued behind others gets its stream and keep-alives.
    const pending = stream.events.next();
    if ((await within(pending, keepAliveMs)) === undefined && !clientGone) {
      sse = new SseWriter(res, keepAliveMs);
      sse.keepAlive();
    }
    let step = await pending;
    if (clientGone) return;
    let opened: ReturnType<typeof openStream> | undefined;
    for (;;) {
      const error = step.done ? new OpenAiError(503, 'server_error', 'service_unavailable', 'the completion stream ended without its last chunk; retry') : chunkError(step.value);
      if (error) {
        if (!sse) throw error;
        sse.send(error.body);
        return;
      }
      const chunk = step.value.data!.completionStream as CompletionChunk;
      sse ??= new SseWriter(res, keepAliveMs);
      opened ??= openStream(sse, chunk, request.includeUsage);
      if (chunk.delta !== '') opened.sendText(chunk.delta);
      if (chunk.finishReason) {
        opened.send({}, finishReason(chunk.finishReason));
        if (request.includeUsage && chunk.usage) sse.send({ ...opened.base, choices: [], usage: openAiUsage(chunk.usage) });
        // The upstream's end follows its last chunk at once. Waiting for it ends the stream as graphql-ws's server
        // ends one, where closing it now would unsubscribe upstream from a finished stream. The wait is not the
        // request's: the client has its [DONE] and the end of the response at once.
        finished = true;
        void within(stream.events.next(), UPSTREAM_END_WAIT_MS).then(close, close);
        return;
      }
      step = await stream.events.next();
      if (clientGone) return;
    }
  } finally {
    sse?.end();
    if (!finished) await close();
  }
}

/** Sends the stream's first chunk (the role) and returns how to send the next ones, which share its id, time and model. */
function openStream(sse: SseWriter, first: CompletionChunk, includeUsage: boolean) {
  const base = { id: completionId(first.id), object: 'chat.completion.chunk', created: nowSeconds(), model: first.model.id, system_fingerprint: fingerprint(first.model) };
  // With include_usage, OpenAI puts `usage: null` on every chunk but the usage chunk.
  const usageField = includeUsage ? { usage: null } : {};
  const chunkOf = (delta: Record<string, string>, finish: string | null) => ({ ...base, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usageField });
  const send = (delta: Record<string, string>, finish: string | null) => sse.send(chunkOf(delta, finish));
  send({ role: 'assistant', content: '' }, null);
  // A piece of text is nearly every chunk of a stream, and all of them differ only in the text: the JSON around it is
  // serialized once per stream (each token was a socket write and a serialization of the whole chunk on one core).
  const frame = textFrame(JSON.stringify(chunkOf({ content: TEXT_SLOT }, null)));
  return { send, sendText: (text: string) => sse.sendSerialized(frame.head + JSON.stringify(text) + frame.tail), base };
}

/** Stands for a chunk's text while its frame is serialized; no id or model name holds it, and it is the last string of a chunk. */
const TEXT_SLOT = '\u0000text\u0000';
const TEXT_SLOT_JSON = JSON.stringify(TEXT_SLOT);

/** The JSON of a text chunk before and after its text. */
function textFrame(json: string): { head: string; tail: string } {
  const at = json.lastIndexOf(TEXT_SLOT_JSON);
  return { head: json.slice(0, at), tail: json.slice(at + TEXT_SLOT_JSON.length) };
}

/** The promise's value, or undefined when it has not settled within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The OpenAI error a stream's event carries: GraphQL errors (a refusal, the upstream lost), or a last chunk with finishReason ERROR. */
function chunkError(event: { data?: Record<string, unknown> | null; errors?: readonly GraphQLFormattedError[] }): OpenAiError | undefined {
  if (event.errors?.length) return fromGraphQLError(event.errors[0], paramForChatField);
  const chunk = event.data?.completionStream as CompletionChunk | undefined;
  if (!chunk) return new OpenAiError(500, 'server_error', 'internal_error', 'the completion stream sent an event without a chunk');
  if (chunk.error) return fromGraphQLError({ message: chunk.error.message, extensions: { code: chunk.error.code } });
  return undefined;
}

function finishReason(graph: string): string {
  const reason = FINISH_REASONS[graph];
  if (!reason) throw new OpenAiError(500, 'server_error', 'internal_error', `the completion finished with ${graph}, which has no OpenAI finish_reason`);
  return reason;
}

/** OpenAI's usage, with DeepSeek's prompt-cache fields and OpenAI's own name for the cached part. */
function openAiUsage(usage: GraphUsage) {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.totalTokens,
    prompt_cache_hit_tokens: usage.promptCacheHitTokens,
    prompt_cache_miss_tokens: usage.promptCacheMissTokens,
    prompt_tokens_details: { cached_tokens: usage.promptCacheHitTokens },
  };
}

const completionId = (id: string) => `chatcmpl-${id}`;
/** The model and the version that generated the text: the same seed gives the same text only with the same fingerprint. */
const fingerprint = (model: GraphModel) => `${model.id}@${model.version}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);
