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
 * The gateway's client of the auth service's internal routes (not GraphQL:
 * these answer the gateway, never a caller). Each request carries a freshly
 * signed gateway identity (`sub: null`, no scopes, audience auth alone): auth
 * only checks that the gateway signed it for auth, which no one else can.
 *
 * Anything but a clear answer — unreachable, timed out, 5xx, an unexpected
 * body, or auth refusing the gateway's identity (mismatched keys) — throws
 * KeysUnavailableError, so a broken link to auth shows as 503 and never as
 * "your key is invalid" nor as an anonymous caller.
 */
export class AuthServiceClient {
  constructor(
    /** The auth service's base URL, e.g. `http://127.0.0.1:4001`. */
    private readonly baseUrl: string,
    private readonly signer: IdentitySigner,
  ) {}

  async verifyApiKey(secret: string): Promise<ApiKeyAnswer> {
    const { status, body } = await this.post('/internal/api-keys/verify', { secret });
    if (status === 401 && body.error === INVALID_KEY) return { valid: false };
    if (status === 200 && typeof body.sub === 'string' && typeof body.keyId === 'string' && isStringArray(body.scopes)) {
      return { valid: true, sub: body.sub, scopes: body.scopes, keyId: body.keyId };
    }
    throw this.unexpected('/internal/api-keys/verify', status, body);
  }

  /** Whether the session (a session token's `jti`) has been logged out. */
  async sessionRevoked(sessionId: string): Promise<boolean> {
    const { status, body } = await this.post('/internal/sessions/status', { sessionId });
    if (status === 200 && typeof body.revoked === 'boolean') return body.revoked;
    throw this.unexpected('/internal/sessions/status', status, body);
  }

  private async post(path: string, payload: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
    const url = new URL(path, this.baseUrl);
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: this.signer.sign({ sub: null, scopes: [] }, AUTH_ONLY) },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new KeysUnavailableError(`POST ${url.origin}${path} failed (${cause}): is the auth service at GATEWAY_AUTH_URL=${this.baseUrl} running?`);
    }
    const text = await response.text();
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
    return new KeysUnavailableError(`POST ${path} answered ${status}${said}${hint}, not the expected answer`);
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
