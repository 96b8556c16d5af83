/**
 * The knowledge service's calls to its sibling, the inference subgraph: over
 * the same GraphQL the gateway uses (HTTP for queries and mutations, graphql-ws
 * for streams), so inference's batching, checks and metering apply to them as
 * to any caller. Every call carries the caller's signed identity exactly as it
 * arrived (DESIGN §4): this service holds no signing key, so it can neither
 * raise the caller's rights nor act for anyone else.
 */
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { codedError, ErrorCode } from '../../lib/errors';
import { IDENTITY_HEADER } from '../../lib/identity';
import type { Usage } from '../../lib/usage-events';

export interface ModelSummary {
  id: string;
  kind: 'EMBEDDING' | 'TEXT_GENERATION' | 'OTHER';
  ready: boolean;
  maxBatchSize: number;
  contextLength: number | null;
}

export interface GenerationInput {
  model?: string | null;
  messages: { role: string; content: string }[];
  maxTokens: number;
  temperature?: number | null;
  seed?: number | null;
}

export interface Generated {
  text: string;
  finishReason: string;
  usage: Usage;
  model: { id: string };
}

export interface GeneratedChunk {
  delta: string;
  finishReason: string | null;
  usage: Usage | null;
  error: { code: string; message: string } | null;
  model: { id: string };
}

const USAGE = 'usage { promptTokens completionTokens totalTokens promptCacheHitTokens promptCacheMissTokens }';

export class InferenceClient {
  private readonly wsUrl: string;

  constructor(private readonly url: string) {
    this.wsUrl = url.replace(/^http/, 'ws');
  }

  /** Every model the GPU tier knows (a public query; no identity needed, but it is sent anyway). */
  async models(identityHeader: string): Promise<ModelSummary[]> {
    const data = await this.request<{ models: ModelSummary[] }>(identityHeader, '{ models { id kind ready maxBatchSize contextLength } }', {});
    return data.models;
  }

  /** One vector per text, in order. */
  async embed(identityHeader: string, texts: readonly string[], model: string): Promise<Float32Array[]> {
    const data = await this.request<{ embed: { index: number; vector: number[] }[] }>(
      identityHeader,
      'query Embed($texts: [String!]!, $model: ID) { embed(texts: $texts, model: $model) { index vector } }',
      { texts, model },
    );
    if (data.embed.length !== texts.length) {
      throw codedError(ErrorCode.InternalServerError, `the inference service returned ${data.embed.length} embeddings for ${texts.length} texts`);
    }
    return data.embed.map((e) => Float32Array.from(e.vector));
  }

  async complete(identityHeader: string, input: GenerationInput): Promise<Generated> {
    const data = await this.request<{ complete: Generated }>(identityHeader, `mutation Complete($input: CompletionInput!) { complete(input: $input) { text finishReason ${USAGE} model { id } } }`, {
      input,
    });
    return data.complete;
  }

  /**
   * The completion's chunks as inference streams them. Ending the iterator
   * (or aborting `signal`) unsubscribes, which stops the generation on the GPU.
   */
  async *completionStream(identityHeader: string, input: GenerationInput, signal?: AbortSignal): AsyncGenerator<GeneratedChunk> {
    const client = createClient({
      url: this.wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { [IDENTITY_HEADER]: identityHeader },
      // One connection per stream, closed with it; not lazy, because a lazy client's close timer outlives dispose().
      lazy: false,
      onNonLazyError: () => undefined,
      // A stream that has started generating must never be silently run again.
      retryAttempts: 0,
    });
    const events = client.iterate<{ completionStream: GeneratedChunk }>({
      query: `subscription Stream($input: CompletionInput!) { completionStream(input: $input) { delta finishReason ${USAGE} error { code message } model { id } } }`,
      variables: { input },
    });
    const onAbort = () => void events.return?.(undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const event of events) {
        if (event.errors?.length) throw fromRemote(event.errors[0]);
        if (event.data) yield event.data.completionStream;
      }
    } catch (error) {
      // graphql-ws throws a refused operation's errors as an array, and a closed socket as a CloseEvent.
      if (Array.isArray(error)) throw fromRemote(error[0] as GraphQLFormattedError);
      if (error instanceof GraphQLError) throw error;
      throw unavailable(this.wsUrl, error);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await events.return?.(undefined);
      await client.dispose();
    }
  }

  private async request<T>(identityHeader: string, query: string, variables: Record<string, unknown>): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identityHeader },
        body: JSON.stringify({ query, variables }),
      });
    } catch (error) {
      throw unavailable(this.url, error);
    }
    let body: { data?: T | null; errors?: GraphQLFormattedError[] };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw codedError(ErrorCode.ServiceUnavailable, `the inference service at ${this.url} answered HTTP ${response.status} without a GraphQL response`);
    }
    if (body.errors?.length) throw fromRemote(body.errors[0]);
    if (!body.data) throw codedError(ErrorCode.ServiceUnavailable, `the inference service at ${this.url} answered HTTP ${response.status} with no data`);
    return body.data;
  }
}

/**
 * The sibling's error, passed on with its code and extensions: the caller
 * sees INSUFFICIENT_BALANCE or MODEL_NOT_READY as if it had asked inference itself.
 */
function fromRemote(error: GraphQLFormattedError): GraphQLError {
  const { code, ...extensions } = (error.extensions ?? {}) as { code?: string } & Record<string, unknown>;
  return new GraphQLError(error.message, { extensions: { ...extensions, code: code ?? ErrorCode.InternalServerError } });
}

function unavailable(url: string, error: unknown): GraphQLError {
  const reason = error instanceof Error ? error.message : typeof (error as { code?: unknown })?.code === 'number' ? `connection closed (${(error as { code: number }).code})` : String(error);
  return codedError(ErrorCode.ServiceUnavailable, `the inference service at ${url} is not reachable: ${reason}`);
}
