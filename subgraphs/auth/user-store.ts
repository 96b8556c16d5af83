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
 * Users in Redis under `auth:`. E-mails are matched case-insensitively.
 *
 * The user hash and the e-mail index are in different Redis Cluster slots, so
 * a sign-up writes the hash under a new id first and then claims the e-mail
 * for it (SET NX): two sign-ups racing for one e-mail cannot both win, and the
 * loser deletes its hash. A crash between the steps leaves a hash no e-mail
 * and no token names, which nothing ever reads.
 */
export class UserStore {
  constructor(private readonly redis: Redis) {}

  /** Returns the new user, or null when the e-mail is already registered. */
  async create(input: { email: string; name: string; passwordHash: string }): Promise<User | null> {
    const user: User = { id: randomUUID(), email: input.email, name: input.name, createdAt: new Date() };
    await this.redis.hset(userKey(user.id), { id: user.id, email: user.email, name: user.name, createdAt: String(user.createdAt.getTime()), passwordHash: input.passwordHash });
    if ((await this.redis.set(emailKey(input.email), user.id, 'NX')) === 'OK') return user;
    await this.redis.del(userKey(user.id));
    return null;
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
