/**
 * POST /v1/embeddings: the `embed` query, answered as OpenAI's `list` of
 * `embedding` objects. The graph returns float vectors; `base64` is their
 * little-endian float32 bytes, encoded here, as OpenAI encodes them. The
 * graph reports no usage for embeddings: `usage` is the texts' r50k_base
 * tokens counted here, the encoding billing counts them in (billing caps each
 * text at the model's token limit, so a text longer than that is billed
 * less than reported).
 */
import type { ServerResponse } from 'node:http';
import { sendJson } from '../../lib/http-service';
import { countTokens } from '../../lib/token-counter';
import type { GatewayContext } from '../auth/context';
import type { GraphOperations } from './graph-operations';
import { EMBEDDINGS } from './operations';
import { paramForEmbeddingField, parseEmbeddingsRequest } from './protocol';

interface Embedding {
  index: number;
  vector: number[];
  model: { id: string };
}

export async function serveEmbeddings(graph: GraphOperations, res: ServerResponse, body: unknown, context: GatewayContext): Promise<void> {
  const request = parseEmbeddingsRequest(body);
  const { data, headers } = await graph.execute(EMBEDDINGS, { texts: request.texts, model: request.model }, context, paramForEmbeddingField);
  const embeddings = data.embed as Embedding[];
  const tokens = request.texts.reduce((sum, text) => sum + countTokens(text), 0);
  sendJson(res, 200, {
    object: 'list',
    data: embeddings.map((e) => ({ object: 'embedding', index: e.index, embedding: request.encoding === 'base64' ? base64Float32(e.vector) : e.vector })),
    model: embeddings[0]?.model.id ?? request.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  }, headers);
}

export function base64Float32(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString('base64');
}
