import { ErrorCode, codedError } from '../../lib/errors';
import type { Identity } from '../../lib/identity';
import type { LoginThrottle } from './login-throttle';
import { decoyHash, hashPassword, verifyPassword } from './passwords';
import type { SignUpLimit } from './sign-up-limit';
import { ADMIN_SCOPE, SESSION_SCOPES } from './scopes';
import type { SessionStore } from './session-store';
import type { SessionTokens } from './session-tokens';
import type { User, UserStore } from './user-store';

export interface AuthPayload {
  token: string;
  expiresAt: Date;
  user: User;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const MAX_EMAIL = 254;
const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;
const MAX_NAME = 100;

/**
 * Sign-up, login and logout: input checks, hashing, throttling and session
 * issuing, over the user store. An account holds the `admin` role when its
 * e-mail is listed in `adminEmails` (AUTH_ADMIN_EMAILS); only then do its
 * sessions carry the `admin` scope.
 */
export class Accounts {
  private readonly adminEmails: ReadonlySet<string>;

  constructor(
    private readonly users: UserStore,
    private readonly tokens: SessionTokens,
    private readonly sessions: SessionStore,
    private readonly throttle: LoginThrottle,
    adminEmails: readonly string[] = [],
    private readonly signUps?: SignUpLimit,
  ) {
    this.adminEmails = new Set(adminEmails.map(normalizeEmail));
  }

  /** `ip` is the caller's address from the signed identity, for the per-address limit. */
  async signUp(email: string, password: string, name: string, ip?: string): Promise<AuthPayload> {
    const verdict = await this.signUps?.attempt(ip);
    if (verdict && !verdict.allowed) {
      const { perIp, windowSeconds } = this.signUps!.limits;
      throw codedError(ErrorCode.RateLimited, `signUp refused: too many sign-ups from this address (at most ${perIp} per ${windowSeconds} s); try again in ${verdict.retryAfterSeconds} s`, {
        retryAfter: verdict.retryAfterSeconds,
        limit: { signUps: perIp, windowSeconds, per: 'ip' },
      });
    }
    const cleanEmail = email.trim();
    const cleanName = name.trim();
    if (!EMAIL.test(cleanEmail) || cleanEmail.length > MAX_EMAIL) {
      throw badInput('email', `a valid e-mail address of at most ${MAX_EMAIL} characters`, email);
    }
    if (password.length < MIN_PASSWORD || password.length > MAX_PASSWORD) {
      throw codedError(ErrorCode.BadUserInput, `signUp expects "password" to be ${MIN_PASSWORD} to ${MAX_PASSWORD} characters long, but got ${password.length}`, { field: 'password' });
    }
    if (cleanName.length === 0 || cleanName.length > MAX_NAME) {
      throw badInput('name', `1 to ${MAX_NAME} characters`, name);
    }
    const user = await this.users.create({ email: cleanEmail, name: cleanName, passwordHash: await hashPassword(password) });
    if (!user) throw codedError(ErrorCode.Conflict, `an account with the e-mail ${JSON.stringify(cleanEmail)} already exists; use login instead`, { field: 'email' });
    return this.signIn(user);
  }

  /** `ip` is the caller's address from the signed identity, for the per-address limit. */
  async login(email: string, password: string, ip: string | undefined): Promise<AuthPayload> {
    const verdict = await this.throttle.attempt(email, ip);
    if (!verdict.allowed) {
      const limits = this.throttle.limits;
      const limit = verdict.by === 'account' ? limits.maxFailuresPerAccount : limits.maxFailuresPerIp;
      throw codedError(
        ErrorCode.RateLimited,
        `login refused: too many failed logins for this ${verdict.by === 'account' ? 'account' : 'address'} (at most ${limit} per ${limits.windowSeconds} s); try again in ${verdict.retryAfterSeconds} s`,
        { retryAfter: verdict.retryAfterSeconds, limit: { failures: limit, windowSeconds: limits.windowSeconds, per: verdict.by } },
      );
    }
    const stored = await this.users.credentialsByEmail(email);
    // Verify against a decoy when the account is missing, so timing does not tell which part was wrong.
    const ok = await verifyPassword(password, stored?.passwordHash ?? (await decoyHash()));
    if (!stored || !ok) throw codedError(ErrorCode.Unauthenticated, 'login failed: the e-mail or the password is incorrect');
    await this.throttle.succeeded(email, ip);
    return this.signIn(stored.user);
  }

  /** Revokes the session the caller signed in with; API keys are revoked with revokeApiKey instead. */
  async logout(identity: Identity): Promise<boolean> {
    if (identity.keyId) {
      throw codedError(ErrorCode.BadUserInput, `logout ends a session, but this request used an API key (${identity.keyId}); revoke API keys with revokeApiKey(id)`);
    }
    if (!identity.sessionId) {
      throw codedError(ErrorCode.BadUserInput, "logout expects a request made with a session token, but the caller's identity names no session");
    }
    await this.sessions.revoke(identity.sessionId);
    return true;
  }

  private async signIn(user: User): Promise<AuthPayload> {
    const scopes = this.adminEmails.has(normalizeEmail(user.email)) ? [...SESSION_SCOPES, ADMIN_SCOPE] : SESSION_SCOPES;
    const { token, expiresAt } = await this.tokens.issue(user.id, scopes);
    return { token, expiresAt, user };
  }
}

const normalizeEmail = (email: string) => email.trim().toLowerCase();

function badInput(field: string, expected: string, got: string) {
  return codedError(ErrorCode.BadUserInput, `signUp expects "${field}" to be ${expected}, but got ${JSON.stringify(got.slice(0, 300))}`, { field });
}
