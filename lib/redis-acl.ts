import { createHash } from 'node:crypto';

/**
 * Least privilege in Redis: each service connects as its own ACL user, whose
 * keys are its own prefix and whose commands exclude administration and the
 * dangerous ones (CONFIG, FLUSHALL, KEYS, DEBUG, SHUTDOWN, ACL, MONITOR…).
 * INFO is granted back because ioredis' ready check reads it (server
 * statistics, no data). Cross-service access is exactly:
 * - inference may append to billing's usage stream (`%W~`: write, not read);
 * - knowledge publishes and subscribes its ingestion channels.
 * Everything else a service needs of another it asks over HTTP with the
 * caller's signed identity.
 *
 * The in-memory store (`REDIS_URL=memory://`) has no ACL: one process, no users.
 */
export const REDIS_SERVICE_USERS = ['gateway', 'auth', 'billing', 'knowledge', 'inference'] as const;

export type RedisServiceUser = (typeof REDIS_SERVICE_USERS)[number];

/** Each user's key patterns and channels, in ACL rule syntax. */
export const REDIS_USER_ACCESS: Readonly<Record<RedisServiceUser, string>> = {
  gateway: '~gw:*',
  auth: '~auth:*',
  billing: '~billing:*',
  knowledge: '~kb:* &kb:ingestion:*',
  inference: '~inference:* %W~billing:usage-events',
};

const COMMANDS = '+@all -@admin -@dangerous +info';

/** The rules of one user after its name and password: `ACL SETUSER <user> on >password <rules>` or an ACL file line. */
export function redisUserRules(user: RedisServiceUser): string {
  return `resetkeys resetchannels ${REDIS_USER_ACCESS[user]} ${COMMANDS}`;
}

/**
 * An ACL file (`redis-server --aclfile`) with every service user and the
 * default user as the operator's, each with a password stored as its SHA-256
 * (Redis' `#<hex>` form): the file reveals no password.
 */
export function redisAclFile(passwords: Readonly<Record<RedisServiceUser | 'default', string>>): string {
  const hash = (password: string) => `#${createHash('sha256').update(password).digest('hex')}`;
  return [`user default on ${hash(passwords.default)} ~* &* +@all`, ...REDIS_SERVICE_USERS.map((user) => `user ${user} on ${hash(passwords[user])} ${redisUserRules(user)}`), ''].join('\n');
}

/** `url` with `user:password` as its credentials. */
export function redisUrlAs(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(user);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}
