import { ErrorCode, codedError } from '../../lib/errors';
import { decoyHash, hashPassword, verifyPassword } from './passwords';
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

/** Sign-up and login: input checks, hashing and session issuing, over the user store. */
export class Accounts {
  constructor(
    private readonly users: UserStore,
    private readonly sessions: SessionTokens,
  ) {}

  async signUp(email: string, password: string, name: string): Promise<AuthPayload> {
    const cleanEmail = email.trim();
    const cleanName = name.trim();
    if (!EMAIL.test(cleanEmail) || cleanEmail.length > MAX_EMAIL) {
      throw badInput('email', `a valid e-mail address of at most ${MAX_EMAIL} characters`, email);
    }
    if (password.length < MIN_PASSWORD || password.length > MAX_PASSWORD) {
      throw codedError(
        ErrorCode.BadUserInput,
        `signUp expects "password" to be ${MIN_PASSWORD} to ${MAX_PASSWORD} characters long, but got ${password.length}`,
        { field: 'password' },
      );
    }
    if (cleanName.length === 0 || cleanName.length > MAX_NAME) {
      throw badInput('name', `1 to ${MAX_NAME} characters`, name);
    }
    const user = await this.users.create({ email: cleanEmail, name: cleanName, passwordHash: await hashPassword(password) });
    if (!user) throw codedError(ErrorCode.Conflict, `an account with the e-mail ${JSON.stringify(cleanEmail)} already exists; use login instead`, { field: 'email' });
    return { ...(await this.sessions.issue(user.id)), user };
  }

  async login(email: string, password: string): Promise<AuthPayload> {
    const stored = await this.users.credentialsByEmail(email);
    // Verify against a decoy when the account is missing, so timing does not tell which part was wrong.
    const ok = await verifyPassword(password, stored?.passwordHash ?? (await decoyHash()));
    if (!stored || !ok) throw codedError(ErrorCode.Unauthenticated, 'login failed: the e-mail or the password is incorrect');
    return { ...(await this.sessions.issue(stored.user.id)), user: stored.user };
  }
}

function badInput(field: string, expected: string, got: string) {
  return codedError(ErrorCode.BadUserInput, `signUp expects "${field}" to be ${expected}, but got ${JSON.stringify(got.slice(0, 300))}`, { field });
}
