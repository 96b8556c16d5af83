import { ErrorCode } from '../../lib/errors';
import { fromGraphQLError } from './errors';
import { openAiQuotaHeaders } from './rate-limit-headers';

describe('fromGraphQLError', () => {
  it.each([
    [ErrorCode.Unauthenticated, 401, 'invalid_request_error', 'invalid_api_key'],
    [ErrorCode.Forbidden, 403, 'invalid_request_error', 'insufficient_permissions'],
    [ErrorCode.BadUserInput, 400, 'invalid_request_error', 'invalid_value'],
    [ErrorCode.ModelNotFound, 404, 'invalid_request_error', 'model_not_found'],
    [ErrorCode.InsufficientBalance, 402, 'insufficient_quota', 'insufficient_balance'],
    [ErrorCode.SpendLimitExceeded, 402, 'insufficient_quota', 'spend_limit_exceeded'],
    [ErrorCode.RateLimited, 429, 'requests', 'rate_limit_exceeded'],
    [ErrorCode.GpuUnavailable, 503, 'server_error', 'gpu_unavailable'],
    [ErrorCode.ModelNotReady, 503, 'server_error', 'model_not_ready'],
    [ErrorCode.ServiceUnavailable, 503, 'server_error', 'service_unavailable'],
    [ErrorCode.SubgraphUnavailable, 503, 'server_error', 'service_unavailable'],
  ])('answers %s with %i, type %s and code %s', (code, status, type, openAiCode) => {
    const error = fromGraphQLError({ message: 'what went wrong', extensions: { code } });
    expect({ status: error.status, body: error.body }).toEqual({ status, body: { error: { message: 'what went wrong', type, param: null, code: openAiCode } } });
  });

  it("names the parameter from extensions.field through the route's translation", () => {
    const error = fromGraphQLError({ message: 'input.maxTokens expects at most 512', extensions: { code: ErrorCode.BadUserInput, field: 'input.maxTokens' } }, () => 'max_tokens');
    expect(error.param).toBe('max_tokens');
  });

  it("sends OpenAI's rate-limit headers and Retry-After from the limiter's numbers, typed by the limit's kind", () => {
    const error = fromGraphQLError({ message: 'too many tokens', extensions: { code: ErrorCode.RateLimited, kind: 'tpm', limit: 1000, remaining: 10, retryAfter: 7 } });
    expect(error.type).toBe('tokens');
    expect(error.headers).toEqual({ 'retry-after': '7', 'x-ratelimit-limit-tokens': '1000', 'x-ratelimit-remaining-tokens': '10', 'x-ratelimit-reset-tokens': '7s' });
    const loading = fromGraphQLError({ message: 'loading', extensions: { code: ErrorCode.ModelNotReady, retryAfter: 2 } });
    expect(loading.headers).toEqual({ 'retry-after': '2' });
  });

  it("answers an error code the door cannot explain (Apollo Server's own) with 500", () => {
    expect(fromGraphQLError({ message: 'Cannot query field', extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } })).toMatchObject({ status: 500, type: 'server_error' });
  });
});

it("turns an admitted answer's RateLimit headers into OpenAI's", () => {
  const headers = new Map(Object.entries({ 'ratelimit-limit': '60', 'ratelimit-remaining': '59', 'ratelimit-reset': '1', 'ratelimit-policy': '60;w=60;comment="rpm per key"' }));
  expect(openAiQuotaHeaders(headers)).toEqual({ 'x-ratelimit-limit-requests': '60', 'x-ratelimit-remaining-requests': '59', 'x-ratelimit-reset-requests': '1s' });
  expect(openAiQuotaHeaders(new Map())).toEqual({});
});
