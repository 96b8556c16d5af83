import { GraphQLError } from 'graphql';

/**
 * Every error code a Sluice client can see in `errors[].extensions.code`.
 * One enum for the whole product, so a client can switch on it without
 * knowing which service raised it. Apollo Server's own codes
 * (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, …) pass through unchanged.
 */
export enum ErrorCode {
  /** No credentials, or credentials that could not be verified. */
  Unauthenticated = 'UNAUTHENTICATED',
  /** Authenticated, but not allowed to do this. */
  Forbidden = 'FORBIDDEN',
  /** An argument was wrong; the message names it, the limit and the value. */
  BadUserInput = 'BAD_USER_INPUT',
  /** The object does not exist, or the caller may not know that it does. */
  NotFound = 'NOT_FOUND',
  /** The write conflicts with existing data (for example an e-mail already registered). */
  Conflict = 'CONFLICT',
  /** The request body is larger than the configured limit. */
  PayloadTooLarge = 'PAYLOAD_TOO_LARGE',
  ModelNotFound = 'MODEL_NOT_FOUND',
  ModelNotReady = 'MODEL_NOT_READY',
  /** The GPU tier (gpu-server or Triton) could not be reached or failed the call. */
  GpuUnavailable = 'GPU_UNAVAILABLE',
  InsufficientBalance = 'INSUFFICIENT_BALANCE',
  /**
   * The API key's spend cap would be passed. `extensions`: `period` ('DAY' or 'MONTH'),
   * and in micro-units `cap`, `spent` (settled in the period), `reserved` (held by the
   * key's live requests) and `needed` (this request's maximum cost).
   */
  SpendLimitExceeded = 'SPEND_LIMIT_EXCEEDED',
  /** The model has no price configured, so it cannot be billed and is not served. */
  ModelNotPriced = 'MODEL_NOT_PRICED',
  /** The operation is beyond a limit on its size, tokens, depth, aliases or root fields; `extensions` name the limit, its maximum and what was got. */
  OperationLimit = 'OPERATION_LIMIT',
  /** The operation's estimated cost (`@cost`/`@listSize`) is over the budget; `extensions` carry `estimatedCost` and `maxCost`. */
  CostLimit = 'COST_LIMIT',
  /**
   * Too many requests, completion tokens or live streams. `extensions`: `limit` (the number),
   * `scope` (whose counter: `key`, `user`, `ip`, or `connection`), `kind` (`rpm`, `tpm`,
   * `ip-rpm`, `streams`), `plan`, `remaining`, and `retryAfter` in seconds (null when the
   * request can never fit: its maxTokens exceed the limit). Answered with `Retry-After` and the
   * `RateLimit-*` headers.
   */
  RateLimited = 'RATE_LIMITED',
  /** Safelist mode: the operation (its document or its id, `extensions.id`) is not in the gateway's persisted query manifest. */
  PersistedQueryNotInSafelist = 'PERSISTED_QUERY_NOT_IN_SAFELIST',
  /** A service this one depends on is not reachable. */
  ServiceUnavailable = 'SERVICE_UNAVAILABLE',
  /**
   * The gateway could not use one subgraph (connection failed, timed out, answered 502/503/504, or its
   * circuit breaker is open). The response still has the other subgraphs' data; the failing subgraph's
   * fields are null. `extensions`: `service` (the subgraph), `reason` (CONNECTION_FAILED, TIMEOUT,
   * BAD_GATEWAY or CIRCUIT_OPEN), `attempts`, and `retryAfter` (seconds) while the breaker is open.
   */
  SubgraphUnavailable = 'SUBGRAPH_UNAVAILABLE',
  InternalServerError = 'INTERNAL_SERVER_ERROR',
}

/**
 * The HTTP status of a request refused with `code` before any GraphQL ran (a
 * context refused, an internal route's answer, a refused subscription). Every
 * code has one, so a new code cannot be added without choosing it.
 */
const HTTP_STATUS: Record<ErrorCode, number> = {
  [ErrorCode.Unauthenticated]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.BadUserInput]: 400,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.ModelNotFound]: 404,
  [ErrorCode.ModelNotReady]: 503,
  [ErrorCode.GpuUnavailable]: 503,
  // DeepSeek's answer for an empty balance; a spend cap is the same refusal at the key's level.
  [ErrorCode.InsufficientBalance]: 402,
  [ErrorCode.SpendLimitExceeded]: 402,
  [ErrorCode.ModelNotPriced]: 422,
  [ErrorCode.OperationLimit]: 400,
  [ErrorCode.CostLimit]: 400,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.PersistedQueryNotInSafelist]: 400,
  [ErrorCode.ServiceUnavailable]: 503,
  [ErrorCode.SubgraphUnavailable]: 502,
  [ErrorCode.InternalServerError]: 500,
};

export function httpStatusFor(code: ErrorCode): number {
  return HTTP_STATUS[code];
}

/**
 * A GraphQL error whose `extensions.code` is one of ours. It sets no HTTP
 * status: a subgraph answering a gateway fetch must reply 200 with the error in
 * the body, or the gateway would see a failed fetch instead of the error.
 */
export function codedError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code } });
}
