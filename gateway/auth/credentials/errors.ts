import { ErrorCode } from '../../../lib/errors';

/** Why a caller's credentials were refused; the gateway answers 401 (WebSocket CloseCode.Unauthorized) with this message. */
export class AuthenticationError extends Error {
  readonly code = ErrorCode.Unauthenticated;
  override name = 'AuthenticationError';
}

/**
 * Why auth's answer is missing. The first four are outages: auth cannot be
 * asked right now (no connection, no answer in time, its breaker open after
 * such failures, or auth answering 503 SERVICE_UNAVAILABLE because its store
 * is down), which says nothing about the credential. The last two are a
 * broken link that waiting will not mend (auth refusing the gateway's own
 * identity, an answer of the wrong shape): an operator must look.
 */
export type KeysUnavailableReason = 'CONNECTION_FAILED' | 'TIMEOUT' | 'CIRCUIT_OPEN' | 'STORE_UNAVAILABLE' | 'GATEWAY_REFUSED' | 'BAD_ANSWER';

const OUTAGES: ReadonlySet<KeysUnavailableReason> = new Set(['CONNECTION_FAILED', 'TIMEOUT', 'CIRCUIT_OPEN', 'STORE_UNAVAILABLE']);

/**
 * The credentials could not be checked (JWKS or auth service unreachable, or
 * auth refusing the gateway itself): the gateway answers 503, never 401 and
 * never a silent downgrade to anonymous, because nothing is known about the
 * caller's credentials either way — unless an earlier answer of auth for the
 * same credential may stand in during an outage (VerificationCache, staleIfError).
 */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';

  constructor(
    message: string,
    readonly reason: KeysUnavailableReason,
  ) {
    super(message);
  }

  /** Auth cannot be asked right now, as opposed to a link that is misconfigured. */
  get outage(): boolean {
    return OUTAGES.has(this.reason);
  }
}

/** Whether `error` says auth cannot be asked right now (see KeysUnavailableReason). */
export function isAuthOutage(error: unknown): boolean {
  return error instanceof KeysUnavailableError && error.outage;
}
