/**
 * POST /v1/embeddings: the `embed` query, answered as OpenAI's `list` of
 * `embedding` objects. The graph returns float vectors; `base64` is their
 * little-endian float32 bytes, encoded here, as OpenAI encodes them. The
 * graph reports no usage for embeddings: `usage` is the texts' r50k_base
 * tokens counted here, the encoding billing counts them in (billing caps each
 * text at the model's token limit, so a text longer than that is billed
 * less than reported), or the number of token ids given. `input` as token
 * ids runs `embed(tokens:)`: the graph decodes them with the model's
 * tokenizer and embeds, and bills, the text they encode.
 */
import type { ServerResponse } from 'node:http';
import { sendJson } from '../../lib/http-service';
import { countTokens } from '../../lib/token-counter';
import type { GatewayContext } from '../auth/context';
import type { GraphOperations } from './graph-operations';
import { EMBEDDINGS, TOKEN_EMBEDDINGS } from './operations';
import { type EmbeddingsInput, paramForEmbeddingField, parseEmbeddingsRequest } from './protocol';

interface Embedding {
  index: number;
  vector: number[];
  model: { id: string };
}

export async function serveEmbeddings(graph: GraphOperations, res: ServerResponse, body: unknown, context: GatewayContext): Promise<void> {
  const { model, input, encoding } = parseEmbeddingsRequest(body);
  const { query, variables, tokens } = embedCall(input, model);
  const { data, headers } = await graph.execute(query, variables, context, paramForEmbeddingField(input));
  const embeddings = data.embed as Embedding[];
  sendJson(
    res,
    200,
    {
      object: 'list',
      data: embeddings.map((e) => ({ object: 'embedding', index: e.index, embedding: encoding === 'base64' ? base64Float32(e.vector) : e.vector })),
      model: embeddings[0]?.model.id ?? model,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    },
    headers,
  );
}

/** The operation for this input, its variables, and the usage to report. */
function embedCall(input: EmbeddingsInput, model: string): { query: string; variables: Record<string, unknown>; tokens: number } {
  if ('texts' in input) return { query: EMBEDDINGS, variables: { texts: input.texts, model }, tokens: input.texts.reduce((sum, text) => sum + countTokens(text), 0) };
  return { query: TOKEN_EMBEDDINGS, variables: { tokens: input.tokens, model }, tokens: input.tokens.reduce((sum, ids) => sum + ids.length, 0) };
}

export function base64Float32(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString('base64');
}
