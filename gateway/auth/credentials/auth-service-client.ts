import { CircuitBreaker } from '../../../lib/circuit-breaker';
import { ErrorCode } from '../../../lib/errors';
import { IDENTITY_HEADER, type IdentitySigner } from '../../../lib/identity';
import type { ServiceName } from '../../../lib/service-calls';
import { KeysUnavailableError } from './errors';

/** What auth says of an API key: who it speaks for, or that it is not valid (unknown, malformed or revoked: auth never says which). */
export type ApiKeyAnswer = { valid: true; sub: string; scopes: string[]; keyId: string } | { valid: false };

/** The exact refusal of `POST /internal/api-keys/verify` for a bad key; any other 401 means auth refused the gateway itself. */
const INVALID_KEY = 'the API key is not valid';
/** The gateway's own identity is for auth's internal routes, which forward it nowhere: no other service accepts it. */
const AUTH_ONLY: readonly ServiceName[] = ['auth'];
/** A credential check sits in front of every request: a slow auth service must fail it, not hang it. */
const TIMEOUT_MS = 5_000;
/**
 * Outages in a row after which auth is not asked for a while: a hung auth
 * would otherwise cost every request whose answer has expired the whole
 * timeout before a stale answer (or a 503) could be given.
 */
const BREAKER = { failureThreshold: 3, openMs: 1_000 };

/**
 * The gateway's client of the auth service's internal routes (not GraphQL:
 * these answer the gateway, never a caller). Each request carries a freshly
 * signed gateway identity (`sub: null`, no scopes, audience auth alone): auth
 * only checks that the gateway signed it for auth, which no one else can.
 *
 * Anything but a clear answer — unreachable, timed out, 5xx, an unexpected
 * body, or auth refusing the gateway's identity (mismatched keys) — throws
 * KeysUnavailableError, so a broken link to auth shows as 503 and never as
 * "your key is invalid" nor as an anonymous caller. Its `reason` tells an
 * outage (which a circuit breaker counts, and during which callers may be
 * served an earlier answer) from a misconfigured link.
 */
export class AuthServiceClient {
  private readonly breaker = new CircuitBreaker(BREAKER);

  constructor(
    /** The auth service's base URL, e.g. `http://127.0.0.1:4001`. */
    private readonly baseUrl: string,
    private readonly signer: IdentitySigner,
  ) {}

  verifyApiKey(secret: string): Promise<ApiKeyAnswer> {
    return this.call('/internal/api-keys/verify', { secret }, (status, body) => {
      if (status === 401 && body.error === INVALID_KEY) return { valid: false };
      if (status === 200 && typeof body.sub === 'string' && typeof body.keyId === 'string' && isStringArray(body.scopes)) {
        return { valid: true, sub: body.sub, scopes: body.scopes, keyId: body.keyId };
      }
      return undefined;
    });
  }

  /** Whether the session (a session token's `jti`) has been logged out. */
  sessionRevoked(sessionId: string): Promise<boolean> {
    return this.call('/internal/sessions/status', { sessionId }, (status, body) => (status === 200 && typeof body.revoked === 'boolean' ? body.revoked : undefined));
  }

  /** One question through the breaker: `read` turns auth's answer into the result, or undefined when it is not one. */
  private async call<T>(path: string, payload: Record<string, string>, read: (status: number, body: Record<string, unknown>) => T | undefined): Promise<T> {
    const permit = this.breaker.tryAcquire();
    if (!permit) {
      throw new KeysUnavailableError(`auth is not asked for ${this.breaker.retryAfterMs()} ms: ${BREAKER.failureThreshold} questions in a row found it unreachable or its store down`, 'CIRCUIT_OPEN');
    }
    try {
      const { status, body } = await this.post(path, payload);
      const answer = read(status, body);
      if (answer === undefined) throw this.unexpected(path, status, body);
      this.breaker.record(permit, true);
      return answer;
    } catch (error) {
      // A misconfigured link is no outage: auth answered, and pausing would not mend it.
      this.breaker.record(permit, !(error instanceof KeysUnavailableError && error.outage));
      throw error;
    }
  }

  private async post(path: string, payload: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    const url = new URL(path, this.baseUrl);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: this.signer.sign({ sub: null, scopes: [] }, AUTH_ONLY) },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      text = await response.text();
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      const cause = timedOut ? `no answer within ${TIMEOUT_MS} ms` : ((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message);
      throw new KeysUnavailableError(`POST ${url.origin}${path} failed (${cause}): is the auth service at GATEWAY_AUTH_URL=${this.baseUrl} running?`, timedOut ? 'TIMEOUT' : 'CONNECTION_FAILED');
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: text.slice(0, 200) };
    }
    return { status: response.status, body: typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {} };
  }

  private unexpected(path: string, status: number, body: Record<string, unknown>): KeysUnavailableError {
    const said = typeof body.error === 'string' ? `: ${body.error}` : '';
    const hint = status === 401 ? " (auth refused the gateway's identity: do SLUICE_IDENTITY_PRIVATE_KEY and auth's SLUICE_IDENTITY_PUBLIC_KEY match?)" : '';
    // Auth's internal routes answer 503 with this code when their store (Redis) fails (lib/internal-routes.ts).
    const reason = status === 503 && body.code === ErrorCode.ServiceUnavailable ? 'STORE_UNAVAILABLE' : status === 401 ? 'GATEWAY_REFUSED' : 'BAD_ANSWER';
    return new KeysUnavailableError(`POST ${path} answered ${status}${said}${hint}, not the expected answer`, reason);
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
