/**
 * The fixed operations the `/v1` door runs, and only these: a persisted
 * document set of the project's. Each route maps its request onto one of
 * them, so the door can do nothing a GraphQL client could not. They are
 * listed in the safelist (Apollo's manifest format) whenever the door is on,
 * so safelist mode accepts them without the operator registering them.
 */
import { createHash } from 'node:crypto';
import type { ManifestOperation } from '../persisted-queries/safelist';

const USAGE = 'usage { promptTokens completionTokens totalTokens promptCacheHitTokens promptCacheMissTokens }';

export const CHAT_COMPLETION = `mutation OpenAiChatCompletion($input: CompletionInput!, $idempotencyKey: String) {
  complete(input: $input, idempotencyKey: $idempotencyKey) { id text finishReason ${USAGE} model { id version } }
}`;

export const CHAT_COMPLETION_STREAM = `subscription OpenAiChatCompletionStream($input: CompletionInput!) {
  completionStream(input: $input) { id delta finishReason ${USAGE} error { code message } model { id version } }
}`;

const EMBEDDING = 'index vector model { id }';

export const EMBEDDINGS = `query OpenAiEmbeddings($texts: [String!]!, $model: ID) {
  embed(texts: $texts, model: $model) { ${EMBEDDING} }
}`;

/** `input` given as token ids: the graph decodes them with the model's tokenizer. */
export const TOKEN_EMBEDDINGS = `query OpenAiTokenEmbeddings($tokens: [[Int!]!]!, $model: ID) {
  embed(tokens: $tokens, model: $model) { ${EMBEDDING} }
}`;

export const MODELS = `query OpenAiModels {
  models { id }
}`;

export const MODEL = `query OpenAiModel($id: ID!) {
  model(id: $id) { id }
}`;

const DOCUMENTS = {
  OpenAiChatCompletion: CHAT_COMPLETION,
  OpenAiChatCompletionStream: CHAT_COMPLETION_STREAM,
  OpenAiEmbeddings: EMBEDDINGS,
  OpenAiTokenEmbeddings: TOKEN_EMBEDDINGS,
  OpenAiModels: MODELS,
  OpenAiModel: MODEL,
};

/** The operations as persisted query manifest entries (id: the body's SHA-256, as Apollo's manifest generator writes it). */
export const OPENAI_OPERATIONS: readonly ManifestOperation[] = Object.entries(DOCUMENTS).map(([name, body]) => ({
  id: createHash('sha256').update(body).digest('hex'),
  body,
  name,
  type: body.startsWith('mutation') ? 'mutation' : body.startsWith('subscription') ? 'subscription' : 'query',
}));
