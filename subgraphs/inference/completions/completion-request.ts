/**
 * Checks a CompletionInput before anything is sent to the GPU tier and turns
 * it into the prompt and sampling parameters the model takes. Every refusal
 * is BAD_USER_INPUT (or MODEL_NOT_FOUND / MODEL_NOT_READY) naming the field,
 * the limit and the value.
 */
import { codedError, ErrorCode } from '../../../lib/errors';
import type { Identity } from '../../../lib/identity';
import { renderChat, type ChatMessage } from './chat-template';
import type { SamplingParameters } from './generation-tensors';
import type { ModelCatalog, ModelInfo } from '../models/model-catalog';
import { servableModel } from '../models/servable-model';

export interface CompletionInput {
  model?: string | null;
  messages: ChatMessage[];
  maxTokens?: number | null;
  temperature?: number | null;
  topP?: number | null;
  seed?: number | null;
  stop?: string[] | null;
  /** Use the response cache for this request (true), bypass it (false), or follow the model's setting (null). */
  cache?: boolean | null;
}

export interface PreparedCompletion {
  model: ModelInfo;
  /** As the input gave them; the prompt is their rendering. */
  messages: ChatMessage[];
  prompt: string;
  sampling: SamplingParameters;
}

export const ROLES = ['system', 'user', 'assistant'] as const;

export interface CompletionLimits {
  maxMessages: number;
  maxPromptChars: number;
  /** maxTokens when the input gives none (capped by the model's context). */
  defaultMaxTokens: number;
}

const MAX_STOP_STRINGS = 4;
const MAX_STOP_CHARS = 64;

export async function prepareCompletion(catalog: ModelCatalog, identity: Identity, input: CompletionInput, limits: CompletionLimits): Promise<PreparedCompletion> {
  if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, 'completions require a signed-in caller: send "Authorization: Bearer <token>"');
  const bad = (field: string, message: string) => codedError(ErrorCode.BadUserInput, `input.${field} ${message}`, { field: `input.${field}` });

  if (input.messages.length === 0 || input.messages.length > limits.maxMessages) {
    throw bad('messages', `expects 1 to ${limits.maxMessages} messages, but got ${input.messages.length}`);
  }
  let chars = 0;
  input.messages.forEach((m, i) => {
    if (!(ROLES as readonly string[]).includes(m.role)) throw bad(`messages[${i}].role`, `expects one of ${ROLES.join(', ')}, but got ${JSON.stringify(m.role)}`);
    chars += m.content.length;
  });
  if (chars > limits.maxPromptChars) throw bad('messages', `expects at most ${limits.maxPromptChars} characters of content in all, but got ${chars}`);

  const model = await servableModel(catalog, input.model, 'TEXT_GENERATION', { label: 'input.model', path: 'input.model' });
  const context = model.contextLength;
  const maxTokens = input.maxTokens ?? Math.min(limits.defaultMaxTokens, context ?? limits.defaultMaxTokens);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) throw bad('maxTokens', `expects an integer of at least 1, but got ${maxTokens}`);
  if (context !== null && maxTokens > context) throw bad('maxTokens', `expects at most ${context} (the context length of ${model.id}), but got ${maxTokens}`);
  const temperature = input.temperature ?? 1;
  if (!(temperature >= 0 && temperature <= 2)) throw bad('temperature', `expects a number from 0 to 2, but got ${temperature}`);
  const topP = input.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw bad('topP', `expects a number greater than 0 and at most 1, but got ${topP}`);
  const stop = input.stop ?? [];
  if (stop.length > MAX_STOP_STRINGS) throw bad('stop', `expects at most ${MAX_STOP_STRINGS} strings, but got ${stop.length}`);
  stop.forEach((s, i) => {
    if (s.length === 0 || s.length > MAX_STOP_CHARS) throw bad(`stop[${i}]`, `expects 1 to ${MAX_STOP_CHARS} characters, but got ${s.length}`);
  });

  let prompt: string;
  try {
    prompt = renderChat(model.chatTemplate ?? undefined, input.messages);
  } catch (error) {
    throw codedError(ErrorCode.InternalServerError, `the chat template of ${model.id} cannot be rendered: ${(error as Error).message}`, { model: model.id });
  }
  const sampling: SamplingParameters = { max_tokens: maxTokens, temperature, top_p: topP };
  if (input.seed !== null && input.seed !== undefined) sampling.seed = input.seed;
  if (stop.length) sampling.stop = stop;
  return { model, messages: input.messages, prompt, sampling };
}
