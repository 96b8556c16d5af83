import { GraphQLError } from 'graphql';

/**
 * Every error code a Sluice client can see in `errors[].extensions.code`.
 * One enum for the whole product, so a client can switch on it without
 * knowing which service raised it. Apollo Server's own codes
 * (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, …) pass through unchanged.
 */
export enum ErrorCode {
  /** No credentials, or credentials that could not be verified. HTTP 401. */
  Unauthenticated = 'UNAUTHENTICATED',
  /** Authenticated, but not allowed to do this. HTTP 403. */
  Forbidden = 'FORBIDDEN',
  /** An argument was wrong; the message names it, the limit and the value. */
  BadUserInput = 'BAD_USER_INPUT',
  /** The object does not exist, or the caller may not know that it does. */
  NotFound = 'NOT_FOUND',
  /** The write conflicts with existing data (for example an e-mail already registered). */
  Conflict = 'CONFLICT',
  /** The request body is larger than the configured limit. HTTP 413. */
  PayloadTooLarge = 'PAYLOAD_TOO_LARGE',
  ModelNotFound = 'MODEL_NOT_FOUND',
  ModelNotReady = 'MODEL_NOT_READY',
  /** The GPU tier (gpu-server or Triton) could not be reached or failed the call. */
  GpuUnavailable = 'GPU_UNAVAILABLE',
  InsufficientBalance = 'INSUFFICIENT_BALANCE',
  /**
   * The API key's spend cap would be passed. `extensions`: `period` ('DAY' or 'MONTH'),
   * and in micro-units `cap`, `spent` (settled in the period), `reserved` (held by the
   * key's live requests) and `needed` (this request's maximum cost). HTTP 402.
   */
  SpendLimitExceeded = 'SPEND_LIMIT_EXCEEDED',
  /** The model has no price configured, so it cannot be billed and is not served. */
  ModelNotPriced = 'MODEL_NOT_PRICED',
  /** The operation is beyond a limit on its size, tokens, depth, aliases or root fields; `extensions` name the limit, its maximum and what was got. HTTP 400. */
  OperationLimit = 'OPERATION_LIMIT',
  /** Too many requests or live streams; `extensions.limit` (and `retryAfter` when known) say more. HTTP 429. */
  RateLimited = 'RATE_LIMITED',
  /** A service this one depends on is not reachable. */
  ServiceUnavailable = 'SERVICE_UNAVAILABLE',
  InternalServerError = 'INTERNAL_SERVER_ERROR',
}

/**
 * A GraphQL error whose `extensions.code` is one of ours. It sets no HTTP
 * status: a subgraph answering a gateway fetch must reply 200 with the error in
 * the body, or the gateway would see a failed fetch instead of the error.
 */
export function codedError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code } });
}
