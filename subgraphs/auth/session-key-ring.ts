import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import type Redis from 'ioredis';
import { exportJWK, type JWK } from 'jose';
import { SESSION_ALGORITHM } from '../../lib/session-token';
import type { KeySealer } from './key-sealing';

/**
 * The Ed25519 keys session tokens are signed with, kept in Redis so that every
 * auth replica signs with the same current key and publishes the same JWKS.
 *
 * - `auth:{session-keys}` (hash): key id → `{"publicKey": PEM, "sealedPrivateKey"?: …}`, the
 *   private half sealed with the auth service's own secret (key-sealing.ts): Redis never holds it in clear
 * - `auth:{session-keys}:current`: the id of the key that signs new tokens
 * - `auth:{session-keys}:retired` (sorted set): key id → when it stopped signing (ms)
 * - `auth:{session-keys}:from-env` (set): ids of keys taken from `AUTH_SESSION_PRIVATE_KEY`
 *
 * Rotation makes a new key current and retires the old one; a retired key stays
 * in the JWKS for `retainMs` (the session lifetime plus a margin), long enough
 * for every token it signed to expire, and is then deleted. Every signature
 * reads the current id from Redis, so a rotation on one replica moves all of
 * them at once.
 *
 * `AUTH_SESSION_PRIVATE_KEY` (or `_FILE`) still works: the first start that
 * sees a given key makes it current (retiring the previous key), and only its
 * public half is written to Redis, since the operator keeps the private half in
 * a secret store. Once rotated away from, it is not made current again by a
 * restart; setting a different key rotates to that one. Before this ring, one
 * key lived in `auth:session-key`; the first start imports it as the current
 * key, so sessions it signed stay valid, and deletes it. Keys stored in clear
 * by earlier versions (`privateKey`) are sealed in place when the ring opens.
 */
// One hash tag: the install script and the JWKS transaction span all four, so on a Redis Cluster they share a slot.
const KEYS_HASH = 'auth:{session-keys}';
const CURRENT = 'auth:{session-keys}:current';
const RETIRED = 'auth:{session-keys}:retired';
const FROM_ENV = 'auth:{session-keys}:from-env';
const LEGACY = 'auth:session-key';

/**
 * ARGV[1] is the mode: `init` installs the candidate only when no key is
 * current; `env` installs it the first time this key id is offered from the
 * environment; `rotate` always installs it. Expired retired keys are deleted
 * on every call. Returns the current key id.
 */
const INSTALL = `
local current = redis.call('GET', KEYS[2])
local install
if ARGV[1] == 'rotate' then
  install = true
elseif ARGV[1] == 'env' then
  install = redis.call('SADD', KEYS[4], ARGV[2]) == 1 or not current
else
  install = not current
end
if install and current ~= ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  if current then redis.call('ZADD', KEYS[3], ARGV[4], current) end
  redis.call('ZREM', KEYS[3], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[2])
  current = ARGV[2]
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[5]))
for _, kid in ipairs(expired) do
  redis.call('HDEL', KEYS[1], kid)
  redis.call('ZREM', KEYS[3], kid)
end
return current
`;

export interface SessionKey {
  kid: string;
  publicKey: KeyObject;
  /** Absent for a key taken from the environment on another replica's behalf. */
  privateKey?: KeyObject;
}

interface StoredKey {
  publicKey: string;
  sealedPrivateKey?: string;
  /** Written by versions before sealing; sealed in place by open(). */
  privateKey?: string;
}

export class SessionKeyError extends Error {
  override name = 'SessionKeyError';
}

export class SessionKeyRing {
  private readonly parsed = new Map<string, SessionKey>();

  private constructor(
    private readonly redis: Redis,
    /** How long a retired key stays published: at least the session lifetime. */
    readonly retainMs: number,
    private readonly envKey: SessionKey | undefined,
    private readonly sealer: KeySealer,
  ) {}

  /** Opens the ring, installing the environment's key, the legacy key or a new one as described above. */
  static async open(redis: Redis, options: { retainMs: number; sealer: KeySealer; privateKeyPem?: string }): Promise<SessionKeyRing> {
    const envKey = options.privateKeyPem ? keyFromPrivatePem(options.privateKeyPem) : undefined;
    const ring = new SessionKeyRing(redis, options.retainMs, envKey, options.sealer);
    await ring.sealClearKeys();
    if (envKey) {
      await ring.install('env', envKey.kid, { publicKey: publicPem(envKey.publicKey) });
    } else {
      const legacy = await redis.get(LEGACY);
      const candidate = legacy ? keyFromPrivatePem(legacy) : generateKey();
      await ring.install('init', candidate.kid, ring.toStored(candidate));
      // Deleted once installed (another slot than the ring's): a crash before this imports it again, which changes nothing.
      if (legacy) await redis.del(LEGACY);
    }
    return ring;
  }

  /** The key new tokens are signed with. */
  async signer(): Promise<SessionKey & { privateKey: KeyObject }> {
    const kid = await this.redis.get(CURRENT);
    if (!kid) throw new SessionKeyError(`no current session key in ${CURRENT}: the auth service installs one at start-up`);
    if (this.envKey?.kid === kid) return this.envKey as SessionKey & { privateKey: KeyObject };
    const key = await this.load(kid);
    if (!key?.privateKey) {
      throw new SessionKeyError(`the current session key ${kid} came from AUTH_SESSION_PRIVATE_KEY on another replica; give every replica the same key`);
    }
    return key as SessionKey & { privateKey: KeyObject };
  }

  /** Makes a new key current; returns the key ids now published. */
  async rotate(now = Date.now()): Promise<string[]> {
    const key = generateKey();
    await this.install('rotate', key.kid, this.toStored(key), now);
    return (await this.jwks(now)).keys.map((jwk) => jwk.kid as string);
  }

  /** The current key, then retired keys still within `retainMs`, newest first. */
  async jwks(now = Date.now()): Promise<{ keys: JWK[] }> {
    const [[, stored], [, current], [, retired]] = (await this.redis.multi().hgetall(KEYS_HASH).get(CURRENT).zrange(RETIRED, 0, -1, 'WITHSCORES').exec()) as [
      [null, Record<string, string>],
      [null, string | null],
      [null, string[]],
    ];
    const kids = current ? [current] : [];
    const stillValid: Array<{ kid: string; at: number }> = [];
    for (let i = 0; i < retired.length; i += 2) {
      const at = Number(retired[i + 1]);
      if (at > now - this.retainMs) stillValid.push({ kid: retired[i], at });
    }
    kids.push(...stillValid.sort((a, b) => b.at - a.at).map((entry) => entry.kid));
    const keys: JWK[] = [];
    for (const kid of kids) {
      if (!stored[kid]) continue;
      // Public halves only: publishing never needs to open a sealed private key.
      const jwk = await exportJWK(this.parsed.get(kid)?.publicKey ?? createPublicKey((JSON.parse(stored[kid]) as StoredKey).publicKey));
      keys.push({ ...jwk, kid, alg: SESSION_ALGORITHM, use: 'sig' });
    }
    return { keys };
  }

  /** Seals, in place, the private keys an earlier version stored in clear. */
  private async sealClearKeys(): Promise<void> {
    for (const [kid, raw] of Object.entries(await this.redis.hgetall(KEYS_HASH))) {
      const stored = JSON.parse(raw) as StoredKey;
      if (stored.privateKey === undefined) continue;
      const sealed: StoredKey = { publicKey: stored.publicKey, sealedPrivateKey: this.sealer.seal(stored.privateKey, kid) };
      // Only if unchanged meanwhile (another replica sealing it too writes the same meaning).
      await this.redis.eval("if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end", 1, KEYS_HASH, kid, raw, JSON.stringify(sealed));
    }
  }

  private toStored(key: SessionKey): StoredKey {
    const privatePem = key.privateKey?.export({ type: 'pkcs8', format: 'pem' }).toString();
    return { publicKey: publicPem(key.publicKey), ...(privatePem ? { sealedPrivateKey: this.sealer.seal(privatePem, key.kid) } : {}) };
  }

  private async install(mode: 'init' | 'env' | 'rotate', kid: string, key: StoredKey, now = Date.now()): Promise<string> {
    return (await this.redis.eval(INSTALL, 4, KEYS_HASH, CURRENT, RETIRED, FROM_ENV, mode, kid, JSON.stringify(key), String(now), String(this.retainMs))) as string;
  }

  private async load(kid: string): Promise<SessionKey | undefined> {
    const cached = this.parsed.get(kid);
    if (cached) return cached;
    const raw = await this.redis.hget(KEYS_HASH, kid);
    return raw ? this.parse(kid, raw) : undefined;
  }

  private parse(kid: string, raw: string): SessionKey {
    let key = this.parsed.get(kid);
    if (!key) {
      const stored = JSON.parse(raw) as StoredKey;
      const privatePem = stored.sealedPrivateKey ? this.sealer.open(stored.sealedPrivateKey, kid) : stored.privateKey;
      key = { kid, publicKey: createPublicKey(stored.publicKey), privateKey: privatePem ? createPrivateKey(privatePem) : undefined };
      this.parsed.set(kid, key);
    }
    return key;
  }
}

/** A key id derived from the public key itself, so the same key always has the same id. */
export function keyId(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64url')
    .slice(0, 16);
}

function keyFromPrivatePem(pem: string): SessionKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SessionKeyError(`session keys must be Ed25519 (PKCS#8 PEM), but got a ${privateKey.asymmetricKeyType} key`);
  }
  const publicKey = createPublicKey(privateKey);
  return { kid: keyId(publicKey), publicKey, privateKey };
}

function generateKey(): SessionKey & { privateKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { kid: keyId(publicKey), publicKey, privateKey };
}

function publicPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}
