/**
 * The wire format of the `/v1` door: OpenAI's request bodies, validated in
 * one place into the variables of the door's fixed operations, and its
 * response objects. Validation here is about shape (types, which fields
 * Sluice serves); ranges (temperature 0–2, maxTokens up to the context) are
 * the graph's to check, so there is one rule and one message for them,
 * translated back to OpenAI's parameter names (`paramFor...`).
 *
 * Fields Sluice does not serve are refused with 400 naming them, unless
 * their value asks for nothing (OpenAI's default): a client library that
 * always sends `frequency_penalty: 0` or `n: 1` works. Fields OpenAI defines
 * that change nothing here (`user`, `metadata`, …) and unknown fields are
 * ignored, as vLLM's server does.
 */
import { invalidRequest } from './errors';

/** The `CompletionInput` the graph takes. */
export interface CompletionInput {
  model: string;
  messages: Array<{ role: string; content: string }>;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stop?: string[];
}

export interface ChatCompletionRequest {
  input: CompletionInput;
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `choices: []` and the usage. */
  includeUsage: boolean;
}

/**
 * What to embed: texts, or token ids (each array one text, in the model's
 * tokenizer: the graph decodes them). `flat` is OpenAI's one-array form,
 * `[1, 2, 3]`, which the graph receives as `[[1, 2, 3]]`.
 */
export type EmbeddingsInput = { texts: string[] } | { tokens: number[][]; flat: boolean };

export interface EmbeddingsRequest {
  model: string;
  input: EmbeddingsInput;
  encoding: 'float' | 'base64';
}

/**
 * OpenAI chat fields Sluice does not serve, and the values that ask for
 * nothing (accepted). The README's "OpenAI-compatible API" section lists them with the error they get.
 */
export const UNSUPPORTED_CHAT_FIELDS: Record<string, (value: unknown) => boolean> = {
  n: (v) => v === 1,
  frequency_penalty: (v) => v === 0,
  presence_penalty: (v) => v === 0,
  logit_bias: (v) => isObject(v) && Object.keys(v).length === 0,
  logprobs: (v) => v === false,
  top_logprobs: (v) => v === 0,
  tools: (v) => Array.isArray(v) && v.length === 0,
  tool_choice: (v) => v === 'none',
  functions: (v) => Array.isArray(v) && v.length === 0,
  function_call: (v) => v === 'none',
  response_format: (v) => isObject(v) && v.type === 'text',
  modalities: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
  audio: () => false,
  prediction: () => false,
  web_search_options: () => false,
  reasoning_effort: () => false,
  service_tier: (v) => v === 'auto' || v === 'default',
  store: (v) => v === false,
};

export const UNSUPPORTED_EMBEDDING_FIELDS: Record<string, (value: unknown) => boolean> = {
  dimensions: () => false,
};

/** Roles the graph's chat template renders; OpenAI's `developer` is its newer name for `system`. */
const ROLES: Record<string, string> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

export function parseChatCompletionRequest(body: unknown): ChatCompletionRequest {
  const fields = requestObject(body);
  refuseUnsupported(fields, UNSUPPORTED_CHAT_FIELDS);
  const input: CompletionInput = { model: requiredString(fields, 'model'), messages: messages(fields.messages) };
  const maxTokens = optionalInteger(fields, 'max_completion_tokens') ?? optionalInteger(fields, 'max_tokens');
  if (maxTokens !== undefined) input.maxTokens = maxTokens;
  const temperature = optionalNumber(fields, 'temperature');
  if (temperature !== undefined) input.temperature = temperature;
  const topP = optionalNumber(fields, 'top_p');
  if (topP !== undefined) input.topP = topP;
  const seed = optionalInteger(fields, 'seed');
  if (seed !== undefined) {
    if (seed < INT32_MIN || seed > INT32_MAX) throw invalidRequest('seed', `seed expects an integer from ${INT32_MIN} to ${INT32_MAX}, but got ${seed}`);
    input.seed = seed;
  }
  const stop = stopStrings(fields.stop);
  if (stop) input.stop = stop;
  const stream = fields.stream ?? false;
  if (typeof stream !== 'boolean') throw invalidRequest('stream', `stream expects a boolean, but got ${describe(stream)}`);
  const options = fields.stream_options ?? undefined;
  if (options !== undefined && !stream) throw invalidRequest('stream_options', 'stream_options is only allowed when stream is true');
  if (options !== undefined && !isObject(options)) throw invalidRequest('stream_options', `stream_options expects an object, but got ${describe(options)}`);
  const includeUsage = options?.include_usage ?? false;
  if (typeof includeUsage !== 'boolean') throw invalidRequest('stream_options.include_usage', `stream_options.include_usage expects a boolean, but got ${describe(includeUsage)}`);
  return { input, stream, includeUsage };
}

export function parseEmbeddingsRequest(body: unknown): EmbeddingsRequest {
  const fields = requestObject(body);
  refuseUnsupported(fields, UNSUPPORTED_EMBEDDING_FIELDS);
  const model = requiredString(fields, 'model');
  const encoding = fields.encoding_format ?? 'float';
  if (encoding !== 'float' && encoding !== 'base64') throw invalidRequest('encoding_format', `encoding_format expects "float" or "base64", but got ${describe(encoding)}`);
  return { model, input: embeddingsInput(fields.input), encoding };
}

/** OpenAI's parameter for a chat completion's graph field (`extensions.field`): `input.maxTokens` → `max_tokens`. */
export function paramForChatField(field: string): string {
  // The key comes as a header, not as a body parameter: name the header.
  if (field === 'idempotencyKey') return 'Idempotency-Key';
  return field.replace(/^input\./, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * OpenAI's parameter for an embedding's graph field: `texts[2]` → `input[2]`,
 * `tokens[0][5]` → `input[0][5]`, or `input[5]` when the ids came as one flat array.
 */
export function paramForEmbeddingField(input: EmbeddingsInput): (field: string) => string {
  const flat = 'flat' in input && input.flat;
  return (field) => (flat ? field.replace(/^tokens(\[0\])?/, 'input') : field.replace(/^(texts|tokens)/, 'input'));
}

function requestObject(body: unknown): Record<string, unknown> {
  if (!isObject(body)) throw invalidRequest('body', `the request body expects a JSON object, but got ${describe(body)}`);
  return body;
}

function refuseUnsupported(fields: Record<string, unknown>, unsupported: Record<string, (value: unknown) => boolean>): void {
  for (const [name, asksForNothing] of Object.entries(unsupported)) {
    const value = fields[name];
    if (value !== undefined && value !== null && !asksForNothing(value)) {
      throw invalidRequest(name, `${name} is not supported by Sluice: expected it absent, null or its default, but got ${describe(value)}`, 'unsupported_parameter');
    }
  }
}

function messages(value: unknown): CompletionInput['messages'] {
  if (!Array.isArray(value) || value.length === 0) throw invalidRequest('messages', `messages expects a non-empty array of messages, but got ${describe(value)}`);
  return value.map((message: unknown, i) => {
    if (!isObject(message)) throw invalidRequest(`messages[${i}]`, `messages[${i}] expects an object with role and content, but got ${describe(message)}`);
    const role = ROLES[String(message.role)];
    if (!role) {
      throw invalidRequest(
        `messages[${i}].role`,
        `messages[${i}].role expects one of ${Object.keys(ROLES).join(', ')} (Sluice serves no tools), but got ${describe(message.role)}`,
        'unsupported_value',
      );
    }
    return { role, content: messageText(message.content, `messages[${i}].content`) };
  });
}

/** A message's text: a string, or the array-of-parts form with text parts only (joined as OpenAI joins them, without a separator). */
function messageText(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw invalidRequest(param, `${param} expects a string or an array of text parts, but got ${describe(content)}`);
  return content
    .map((part: unknown, j) => {
      if (isObject(part) && part.type === 'text' && typeof part.text === 'string') return part.text;
      const type = isObject(part) ? part.type : undefined;
      throw invalidRequest(
        `${param}[${j}]`,
        `${param}[${j}] expects a text part ({"type": "text", "text": "..."}): Sluice's models read text only, but got ${type === undefined ? describe(part) : `a part of type ${describe(type)}`}`,
        'unsupported_value',
      );
    })
    .join('');
}

function stopStrings(value: unknown): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((s) => typeof s === 'string')) return value;
  throw invalidRequest('stop', `stop expects a string or an array of strings, but got ${describe(value)}`);
}

/** OpenAI's `input`: a string, an array of strings, an array of token ids, or an array of such arrays. */
function embeddingsInput(value: unknown): EmbeddingsInput {
  const expected = 'a string, a non-empty array of strings, a non-empty array of token ids, or a non-empty array of non-empty arrays of token ids';
  if (typeof value === 'string') return { texts: [value] };
  if (!Array.isArray(value) || value.length === 0) throw invalidRequest('input', `input expects ${expected}, but got ${describe(value)}`);
  if (value.every((s) => typeof s === 'string')) return { texts: value };
  if (value.every((t) => typeof t === 'number')) return { tokens: [tokenIds(value, 'input')], flat: true };
  if (value.every((row) => Array.isArray(row))) {
    return {
      tokens: value.map((row: unknown[], i) => {
        if (row.length === 0) throw invalidRequest(`input[${i}]`, `input[${i}] expects a non-empty array of token ids, but got []`);
        return tokenIds(row, `input[${i}]`);
      }),
      flat: false,
    };
  }
  throw invalidRequest('input', `input expects ${expected}, but got ${describe(value)}`);
}

/** Token ids as the graph's `Int` holds them; whether each is a token of the model's tokenizer is the graph's to say. */
function tokenIds(row: unknown[], param: string): number[] {
  const bad = row.findIndex((id) => typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > INT32_MAX);
  if (bad >= 0) throw invalidRequest(`${param}[${bad}]`, `${param}[${bad}] expects a token id (an integer from 0 to ${INT32_MAX}), but got ${describe(row[bad])}`);
  return row as number[];
}

function requiredString(fields: Record<string, unknown>, name: string): string {
  const value = fields[name];
  if (typeof value !== 'string' || value === '') throw invalidRequest(name, `${name} expects a non-empty string, but got ${describe(value)}`);
  return value;
}

function optionalNumber(fields: Record<string, unknown>, name: string): number | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalidRequest(name, `${name} expects a number, but got ${describe(value)}`);
  return value;
}

function optionalInteger(fields: Record<string, unknown>, name: string): number | undefined {
  const value = optionalNumber(fields, name);
  if (value !== undefined && !Number.isInteger(value)) throw invalidRequest(name, `${name} expects an integer, but got ${value}`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value as a message shows it: JSON, cut short. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const json = JSON.stringify(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}
