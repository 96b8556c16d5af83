import { ErrorCode } from '../../../lib/errors';

/** Why a caller's credentials were refused; the gateway answers 401 (WebSocket CloseCode.Unauthorized) with this message. */
export class AuthenticationError extends Error {
  readonly code = ErrorCode.Unauthenticated;
  override name = 'AuthenticationError';
}

/**
 * The credentials could not be checked (JWKS or auth service unreachable, or
 * auth refusing the gateway itself): the gateway answers 503, never 401 and
 * never a silent downgrade to anonymous, because nothing is known about the
 * caller's credentials either way.
 */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}
