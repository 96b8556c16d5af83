import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';

export interface User {
  id: string;
  email: string;
  name: string;
  createdAt: Date;
}

interface StoredUser {
  user: User;
  passwordHash: string;
}

/**
 * Creates the e-mail index entry and the user hash together, or neither:
 * two sign-ups racing for one e-mail cannot both win.
 */
const CREATE_USER = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'email', ARGV[2], 'name', ARGV[3], 'createdAt', ARGV[4], 'passwordHash', ARGV[5])
return 1
`;

/** Users in Redis under `auth:`. E-mails are matched case-insensitively. */
export class UserStore {
  constructor(private readonly redis: Redis) {}

  /** Returns the new user, or null when the e-mail is already registered. */
  async create(input: { email: string; name: string; passwordHash: string }): Promise<User | null> {
    const user: User = { id: randomUUID(), email: input.email, name: input.name, createdAt: new Date() };
    const created = await this.redis.eval(
      CREATE_USER,
      2,
      emailKey(input.email),
      userKey(user.id),
      user.id,
      user.email,
      user.name,
      String(user.createdAt.getTime()),
      input.passwordHash,
    );
    return created === 1 ? user : null;
  }

  async byId(id: string): Promise<User | null> {
    return (await this.load(id))?.user ?? null;
  }

  /** The user and their password hash, for login only. */
  async credentialsByEmail(email: string): Promise<StoredUser | null> {
    const id = await this.redis.get(emailKey(email));
    return id ? this.load(id) : null;
  }

  private async load(id: string): Promise<StoredUser | null> {
    const hash = await this.redis.hgetall(userKey(id));
    if (!hash.id) return null;
    return {
      user: { id: hash.id, email: hash.email, name: hash.name, createdAt: new Date(Number(hash.createdAt)) },
      passwordHash: hash.passwordHash,
    };
  }
}

const userKey = (id: string) => `auth:user:${id}`;
const emailKey = (email: string) => `auth:email:${email.trim().toLowerCase()}`;
