import { describe, expect, it } from 'vitest';
import { describeError, describeGraphError, isCutCode, isStreamCut, isUnauthenticated } from './errors';

describe('describeGraphError', () => {
  it('gives the amounts of an insufficient balance', () => {
    const error = { message: 'insufficient balance: …', extensions: { code: 'INSUFFICIENT_BALANCE', needed: 107_520, available: 1_200 } };
    expect(describeGraphError(error)).toBe('Your balance is too low: this request may cost up to $0.10752, and $0.0012 is available. Top up, or ask for a shorter answer.');
  });

  it('gives the wait of a rate limit, and says when a request can never fit', () => {
    expect(describeGraphError({ message: '…', extensions: { code: 'RATE_LIMITED', limit: 60, kind: 'rpm', retryAfter: 12 } })).toBe(
      'Too many requests right now (the limit is 60 requests a minute): try again in 12 seconds.',
    );
    expect(describeGraphError({ message: '…', extensions: { code: 'RATE_LIMITED', limit: 1000, kind: 'tpm', retryAfter: null } })).toBe(
      'This request is larger than the rate limit allows (the limit is 1,000 tokens a minute), so it can never be admitted: ask for fewer tokens.',
    );
  });

  it('names the missing scope of a forbidden request', () => {
    const error = { message: 'the field Mutation.addDocument needs the scope knowledge:write', extensions: { code: 'FORBIDDEN', missingScopes: ['knowledge:write'] } };
    expect(describeGraphError(error)).toBe('You are not allowed to do this: it needs the “knowledge:write” scope, which this session or key does not have.');
  });

  it('gives a key spend limit with what was spent and held', () => {
    const error = { message: '…', extensions: { code: 'SPEND_LIMIT_EXCEEDED', period: 'DAY', cap: 1_000_000, spent: 900_000, reserved: 50_000, needed: 107_520 } };
    expect(describeGraphError(error)).toBe(
      "This API key's daily spend limit of $1.00 would be passed: $0.90 is spent and $0.05 is held by running requests, and this request may cost up to $0.10752.",
    );
  });

  it("falls back to the service's message as a sentence when a code has no rule or lacks its fields", () => {
    expect(describeGraphError({ message: 'an account with this e-mail already exists', extensions: { code: 'CONFLICT' } })).toBe('An account with this e-mail already exists.');
    expect(describeGraphError({ message: 'short', extensions: { code: 'INSUFFICIENT_BALANCE' } })).toBe('Short.');
  });
});

describe('describeError', () => {
  it('reads the GraphQL errors in the JSON body of an HTTP error', () => {
    const error = Object.assign(new Error('Response not successful'), {
      statusCode: 429,
      bodyText: JSON.stringify({ errors: [{ message: '…', extensions: { code: 'RATE_LIMITED', limit: 5, kind: 'rpm', retryAfter: 1 } }] }),
    });
    expect(describeError(error)).toBe('Too many requests right now (the limit is 5 requests a minute): try again in 1 second.');
  });

  it('says the status when the body is not GraphQL, and that Sluice is unreachable on a network failure', () => {
    expect(describeError(Object.assign(new Error('Response not successful'), { statusCode: 502, bodyText: '<html>' }))).toBe('Sluice answered with HTTP 502: a service is failing, try again shortly.');
    expect(describeError(new TypeError('Failed to fetch'))).toBe('Cannot reach Sluice: check your connection, or that the gateway is running.');
  });

  it('describes each distinct error once', () => {
    const error = { errors: [{ message: 'model is loading' }, { message: 'model is loading' }] };
    expect(describeError(error)).toBe('Model is loading.');
  });

  it('describes graphql-ws closes, and a 4401 close as a sign-out', () => {
    expect(describeError({ code: 4401, reason: 'Unauthorized: token expired' })).toBe('You are signed out (the session expired or was ended): sign in again.');
    expect(describeError({ code: 1006, reason: '' })).toBe('The live connection to Sluice closed: try again.');
  });

  it("reads the close inside the Error Apollo's WebSocket link makes of it", () => {
    expect(describeError(new Error('Socket closed with event 4401 Unauthorized: token expired'))).toBe('You are signed out (the session expired or was ended): sign in again.');
    expect(describeError(new Error('Socket closed with event 4500 Internal error'))).toBe('The live connection to Sluice closed (Internal error): try again.');
    expect(isUnauthenticated(new Error('Socket closed with event 4401 Unauthorized'))).toBe(true);
  });
});

describe('isUnauthenticated', () => {
  it('recognises a 401, an UNAUTHENTICATED error and a 4401 close, and nothing else', () => {
    expect(isUnauthenticated(Object.assign(new Error('x'), { statusCode: 401, bodyText: '' }))).toBe(true);
    expect(isUnauthenticated({ errors: [{ message: 'x', extensions: { code: 'UNAUTHENTICATED' } }] })).toBe(true);
    expect(isUnauthenticated({ code: 4401, reason: '' })).toBe(true);
    expect(isUnauthenticated({ errors: [{ message: 'x', extensions: { code: 'FORBIDDEN' } }] })).toBe(false);
    expect(isUnauthenticated(new TypeError('Failed to fetch'))).toBe(false);
  });
});

describe('isStreamCut', () => {
  it('is true for a server lost under the stream: SERVICE_UNAVAILABLE, SUBGRAPH_UNAVAILABLE, GPU_UNAVAILABLE, a close without a protocol reason, a network failure', () => {
    expect(isStreamCut([{ message: 'inference ended the subscription; subscribe again', extensions: { code: 'SERVICE_UNAVAILABLE' } }])).toBe(true);
    expect(isStreamCut({ errors: [{ message: '…', extensions: { code: 'SUBGRAPH_UNAVAILABLE', service: 'inference' } }] })).toBe(true);
    expect(isCutCode('GPU_UNAVAILABLE')).toBe(true);
    expect(isStreamCut({ code: 1006, reason: '' })).toBe(true);
    expect(isStreamCut(new Error('Socket closed with event 1006'))).toBe(true);
    expect(isStreamCut({ code: 4503, reason: 'Service unavailable: credentials cannot be verified right now' })).toBe(true);
    expect(isStreamCut(new TypeError('Failed to fetch'))).toBe(true);
  });

  it('is false for a refusal: a bad input, a rate limit, a low balance, a 4401 or 4400 close, anything else', () => {
    expect(isStreamCut([{ message: 'input.maxTokens expects …', extensions: { code: 'BAD_USER_INPUT' } }])).toBe(false);
    expect(isStreamCut([{ message: '…', extensions: { code: 'RATE_LIMITED' } }])).toBe(false);
    expect(
      isStreamCut([
        { message: '…', extensions: { code: 'SERVICE_UNAVAILABLE' } },
        { message: '…', extensions: { code: 'INSUFFICIENT_BALANCE' } },
      ]),
    ).toBe(false);
    expect(isStreamCut({ code: 4401, reason: 'Unauthorized' })).toBe(false);
    expect(isStreamCut({ code: 4400, reason: 'Invalid message received' })).toBe(false);
    expect(isCutCode('MODEL_NOT_FOUND')).toBe(false);
    expect(isCutCode(undefined)).toBe(false);
    expect(isStreamCut('something')).toBe(false);
  });
});
