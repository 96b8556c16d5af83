import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { generateIdentityKeyPair } from '../lib/identity';

/**
 * `npm run keys [dir]`: writes a fresh Ed25519 key pair for the signed identity
 * (DESIGN §4): the gateway mounts the private key, the subgraphs the public
 * one. `npm start` does not need this (it makes an ephemeral pair per run);
 * docker-compose.yml mounts these files as secrets.
 */
const dir = path.resolve(process.argv[2] ?? path.join(__dirname, '..', '.data', 'secrets'));
mkdirSync(dir, { recursive: true, mode: 0o700 });
const { privateKeyPem, publicKeyPem } = generateIdentityKeyPair();
writeFileSync(path.join(dir, 'identity-private.pem'), privateKeyPem, { mode: 0o600 });
writeFileSync(path.join(dir, 'identity-public.pem'), publicKeyPem, { mode: 0o644 });
process.stdout.write(`wrote identity-private.pem and identity-public.pem to ${dir}\n`);
