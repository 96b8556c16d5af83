import { createPrivateKey } from 'node:crypto';
import { generateIdentityKeyPair, IdentitySigner, IdentityVerifier } from './identity';
import { createPublicKey } from 'node:crypto';

const keys = generateIdentityKeyPair();
const signer = new IdentitySigner(createPrivateKey(keys.privateKeyPem), 60);
const verifier = new IdentityVerifier([createPublicKey(keys.publicKeyPem)]);

describe('signed identity', () => {
  it('round-trips subject, scopes and key id', () => {
    const header = signer.sign({ sub: 'u1', scopes: ['knowledge:read'], keyId: 'k1' });
    expect(verifier.verify(header)).toMatchObject({ sub: 'u1', scopes: ['knowledge:read'], keyId: 'k1' });
  });

  it('carries anonymous callers as sub null', () => {
    expect(verifier.verify(signer.sign({ sub: null, scopes: [] })).sub).toBeNull();
  });

  it('refuses a missing header, saying requests must come through the gateway', () => {
    expect(() => verifier.verify(undefined)).toThrow('missing x-sluice-identity header: requests must come through the gateway');
  });

  it('refuses a malformed header', () => {
    expect(() => verifier.verify('garbage')).toThrow('malformed x-sluice-identity header: expected "v1.<claims>.<signature>"');
  });

  it('refuses claims changed after signing', () => {
    const [version, , signature] = signer.sign({ sub: 'u1', scopes: [] }).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'u2', scopes: ['admin'], iat: 0, exp: 9e9 })).toString('base64url');
    expect(() => verifier.verify(`${version}.${forged}.${signature}`)).toThrow('invalid signature');
  });

  it('refuses an identity signed by another key', () => {
    const other = generateIdentityKeyPair();
    const forger = new IdentitySigner(createPrivateKey(other.privateKeyPem));
    expect(() => verifier.verify(forger.sign({ sub: 'u1', scopes: ['admin'] }))).toThrow('invalid signature');
  });

  it('accepts any of several keys, so the signing key can be rotated', () => {
    const next = generateIdentityKeyPair();
    const both = new IdentityVerifier([createPublicKey(next.publicKeyPem), createPublicKey(keys.publicKeyPem)]);
    expect(both.verify(signer.sign({ sub: 'u1', scopes: [] })).sub).toBe('u1');
  });

  it('refuses an expired identity (beyond the clock-skew allowance)', () => {
    const header = signer.sign({ sub: 'u1', scopes: [] }, Date.now() - 120_000);
    expect(() => verifier.verify(header)).toThrow(/expired at/);
  });

  it('refuses an identity issued in the future', () => {
    const header = signer.sign({ sub: 'u1', scopes: [] }, Date.now() + 120_000);
    expect(() => verifier.verify(header)).toThrow('issued in the future');
  });

  it('reuses the header signed for the same claims until it is half through its life, then signs a new one', () => {
    const own = new IdentitySigner(createPrivateKey(keys.privateKeyPem), 60);
    const t0 = Date.now();
    const first = own.current({ sub: 'u1', scopes: ['knowledge:read'] }, t0);
    expect(own.current({ sub: 'u1', scopes: ['knowledge:read'] }, t0 + 30_000)).toBe(first);
    expect(own.current({ sub: 'u1', scopes: ['knowledge:read'], keyId: 'k1' }, t0)).not.toBe(first);
    expect(own.current({ sub: 'u2', scopes: ['knowledge:read'] }, t0)).not.toBe(first);
    const later = own.current({ sub: 'u1', scopes: ['knowledge:read'] }, t0 + 30_001);
    expect(later).not.toBe(first);
    expect(verifier.verify(later, t0 + 30_001)).toMatchObject({ sub: 'u1', iat: Math.floor((t0 + 30_001) / 1000) });
  });

  it('checks the times of a header it verified before on every use, and keeps its claims unchangeable', () => {
    const t0 = Date.now();
    const header = signer.sign({ sub: 'u1', scopes: ['knowledge:read'] }, t0);
    const identity = verifier.verify(header, t0);
    expect(verifier.verify(header, t0 + 10_000)).toBe(identity);
    expect(() => verifier.verify(header, t0 + 66_000)).toThrow(/expired at/);
    expect(() => verifier.verify(header, t0 - 10_000)).toThrow('issued in the future');
    expect(() => (identity.scopes as string[]).push('admin')).toThrow(TypeError);
    // A changed copy of a verified header is verified afresh, and fails. The signature's first
    // character is changed: its last ones often end an Ed25519 signature in "AA" already.
    const start = header.lastIndexOf('.') + 1;
    const tampered = `${header.slice(0, start)}${header[start] === 'A' ? 'B' : 'A'}${header.slice(start + 1)}`;
    expect(() => verifier.verify(tampered, t0)).toThrow('invalid signature');
  });
});
