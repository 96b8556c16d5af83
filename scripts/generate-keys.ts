import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateIdentityKeyPair } from '../lib/identity';
import { redisAclFile, REDIS_SERVICE_USERS } from '../lib/redis-acl';
import { GPU_RESTRICTED_CATEGORIES } from './stack';

/**
 * `npm run keys [dir]`: writes every secret docker-compose.yml mounts, each
 * service getting only its own (README, "Security model"):
 * - identity-private.pem / identity-public.pem: the Ed25519 pair of the signed
 *   identity (DESIGN §4): the gateway signs, the subgraphs verify;
 * - session-sealing-key: what auth seals the session-signing keys with in Redis;
 * - redis-users.acl and redis-<user>-password: the Redis ACL (passwords stored
 *   hashed) and each service's password;
 * - gpu-restrictions (the gpu-server's, and Triton's, `<categories>:<key>=<value>`)
 *   and gpu-key (the inference service's `<key>=<value>`);
 * - metrics-token and gateway-metrics.env: the bearer token of every /metrics.
 * Running it again rotates them all: restart the stack afterwards. `npm start`
 * does not need this (it makes its secrets per run).
 */
const dir = path.resolve(process.argv[2] ?? path.join(__dirname, '..', '.data', 'secrets'));
mkdirSync(dir, { recursive: true, mode: 0o700 });
const secret = () => randomBytes(32).toString('base64url');
const write = (name: string, content: string, mode = 0o600) => writeFileSync(path.join(dir, name), content, { mode });

const { privateKeyPem, publicKeyPem } = generateIdentityKeyPair();
write('identity-private.pem', privateKeyPem);
write('identity-public.pem', publicKeyPem, 0o644);
write('session-sealing-key', secret());

const passwords = Object.fromEntries(['default', ...REDIS_SERVICE_USERS].map((user) => [user, secret()])) as Parameters<typeof redisAclFile>[0];
// Passwords appear in it only hashed; redis-server reads it as its own user.
write('redis-users.acl', redisAclFile(passwords), 0o644);
for (const [user, password] of Object.entries(passwords)) write(`redis-${user}-password`, password);

const gpuKey = `sluice-gpu-key=${secret()}`;
write('gpu-restrictions', `${GPU_RESTRICTED_CATEGORIES}:${gpuKey}`);
write('gpu-key', gpuKey);

const metricsToken = secret();
write('metrics-token', metricsToken);
write('gateway-metrics.env', `GATEWAY_METRICS_TOKEN=${metricsToken}\n`);
process.stdout.write(`wrote the identity keys, the session sealing key, the Redis ACL and passwords, the gpu-server key and the metrics token to ${dir}\n`);
