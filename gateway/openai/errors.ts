/**
 * OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`,
 * from the gateway's errors: one table from our `ErrorCode` to OpenAI's
 * `type` and `code`, the status from `httpStatusFor` (the gateway's own
 * answer for the same refusal), so a client's SDK raises the error class it
 * expects (AuthenticationError for 401, RateLimitError for 429, …).
 */
import type { GraphQLFormattedError } from 'graphql';
import { ErrorCode, httpStatusFor } from '../../lib/errors';
import { openAiRateLimitHeaders } from './rate-limit-headers';

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class OpenAiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string | null,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body(): OpenAiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A request the door refuses before running anything: 400, naming the parameter. */
export function invalidRequest(param: string, message: string, code: string | null = null): OpenAiError {
  return new OpenAiError(400, 'invalid_request_error', code, message, param);
}

/** OpenAI's `type` and `code` for each of our codes; the status is the gateway's (`httpStatusFor`) but where noted. */
const OPENAI_SHAPE: Record<ErrorCode, { type: string; code: string | null; status?: number }> = {
  [ErrorCode.Unauthenticated]: { type: 'invalid_request_error', code: 'invalid_api_key' },
  [ErrorCode.Forbidden]: { type: 'invalid_request_error', code: 'insufficient_permissions' },
  [ErrorCode.BadUserInput]: { type: 'invalid_request_error', code: 'invalid_value' },
  [ErrorCode.NotFound]: { type: 'invalid_request_error', code: 'not_found' },
  [ErrorCode.Conflict]: { type: 'invalid_request_error', code: 'conflict' },
  [ErrorCode.PayloadTooLarge]: { type: 'invalid_request_error', code: 'request_too_large' },
  [ErrorCode.ModelNotFound]: { type: 'invalid_request_error', code: 'model_not_found' },
  [ErrorCode.ModelNotReady]: { type: 'server_error', code: 'model_not_ready' },
  [ErrorCode.GpuUnavailable]: { type: 'server_error', code: 'gpu_unavailable' },
  // DeepSeek answers an empty balance with 402; OpenAI's type for running out of credit is insufficient_quota.
  [ErrorCode.InsufficientBalance]: { type: 'insufficient_quota', code: 'insufficient_balance' },
  [ErrorCode.SpendLimitExceeded]: { type: 'insufficient_quota', code: 'spend_limit_exceeded' },
  [ErrorCode.ModelNotPriced]: { type: 'invalid_request_error', code: 'model_not_priced' },
  [ErrorCode.OperationLimit]: { type: 'invalid_request_error', code: 'request_too_large' },
  [ErrorCode.CostLimit]: { type: 'invalid_request_error', code: 'request_too_large' },
  // OpenAI's type names the limit (requests or tokens): `rateLimited` picks it from the limiter's `kind`.
  [ErrorCode.RateLimited]: { type: 'requests', code: 'rate_limit_exceeded' },
  // Only an operator's safelist without the door's operations gets here (they are added to it at start).
  [ErrorCode.PersistedQueryNotInSafelist]: { type: 'server_error', code: 'operation_not_in_safelist', status: 500 },
  [ErrorCode.ServiceUnavailable]: { type: 'server_error', code: 'service_unavailable' },
  // The GraphQL answer is 502 with the other subgraphs' data; here nothing is usable, and OpenAI clients retry a 503.
  [ErrorCode.SubgraphUnavailable]: { type: 'server_error', code: 'service_unavailable', status: 503 },
  [ErrorCode.InternalServerError]: { type: 'server_error', code: 'internal_error' },
};

const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * The OpenAI error for a GraphQL error the graph answered (the first of a
 * refusal or a failed operation), with `param` translated by `paramOf` from
 * the graph's `extensions.field` (`input.maxTokens` → `max_tokens`).
 */
export function fromGraphQLError(error: GraphQLFormattedError, paramOf: (field: string) => string | null = () => null): OpenAiError {
  const extensions = error.extensions ?? {};
  const code = String(extensions.code ?? '');
  if (!KNOWN_CODES.has(code)) {
    // Apollo Server's own codes (a document that does not validate): the door's fixed operations do not match the schema.
    return new OpenAiError(500, 'server_error', 'internal_error', `the gateway could not run its operation: ${error.message}`);
  }
  const shape = OPENAI_SHAPE[code as ErrorCode];
  const status = shape.status ?? httpStatusFor(code as ErrorCode);
  // Only a bad argument names a parameter (other errors' `field` is the schema's, as authorization's `Mutation.complete`).
  const param = code === ErrorCode.BadUserInput && typeof extensions.field === 'string' ? paramOf(extensions.field) : null;
  const headers = openAiRateLimitHeaders(extensions);
  const type = code === ErrorCode.RateLimited && extensions.kind === 'tpm' ? 'tokens' : shape.type;
  return new OpenAiError(status, type, shape.code, error.message, param, headers);
}
