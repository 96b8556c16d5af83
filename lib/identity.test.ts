import { createPrivateKey } from 'node:crypto';
import { generateIdentityKeyPair, IdentityError, IdentitySigner, IdentityVerifier } from './identity';
import { createPublicKey, sign } from 'node:crypto';

const keys = generateIdentityKeyPair();
const signer = new IdentitySigner(createPrivateKey(keys.privateKeyPem), 60);
const verifier = new IdentityVerifier([createPublicKey(keys.publicKeyPem)]);
/** The audience an inference request's identity gets: inference, and billing, where inference reserves the cost. */
const AUD = ['inference', 'billing'];

describe('signed identity', () => {
  it('round-trips subject, scopes and key id', () => {
    const header = signer.sign({ sub: 'u1', scopes: ['knowledge:read'], keyId: 'k1' }, AUD);
    expect(verifier.verify(header, 'billing')).toMatchObject({ sub: 'u1', scopes: ['knowledge:read'], keyId: 'k1' });
  });

  it('carries anonymous callers as sub null', () => {
    expect(verifier.verify(signer.sign({ sub: null, scopes: [] }, AUD), 'billing').sub).toBeNull();
  });

  it('refuses a missing header, saying requests must come through the gateway', () => {
    expect(() => verifier.verify(undefined, 'billing')).toThrow('missing x-sluice-identity header: requests must come through the gateway');
  });

  it('refuses a malformed header', () => {
    expect(() => verifier.verify('garbage', 'billing')).toThrow('malformed x-sluice-identity header: expected "v2.<claims>.<signature>"');
  });

  it('refuses claims changed after signing', () => {
    const [version, , signature] = signer.sign({ sub: 'u1', scopes: [] }, AUD).split('.');
    const forged = Buffer.from(JSON.stringify({ sub: 'u2', scopes: ['admin'], iat: 0, exp: 9e9 })).toString('base64url');
    expect(() => verifier.verify(`${version}.${forged}.${signature}`, 'billing')).toThrow('invalid signature');
  });

  it('refuses an identity signed by another key', () => {
    const other = generateIdentityKeyPair();
    const forger = new IdentitySigner(createPrivateKey(other.privateKeyPem));
    expect(() => verifier.verify(forger.sign({ sub: 'u1', scopes: ['admin'] }, AUD), 'billing')).toThrow('invalid signature');
  });

  it('accepts any of several keys, so the signing key can be rotated', () => {
    const next = generateIdentityKeyPair();
    const both = new IdentityVerifier([createPublicKey(next.publicKeyPem), createPublicKey(keys.publicKeyPem)]);
    expect(both.verify(signer.sign({ sub: 'u1', scopes: [] }, AUD), 'billing').sub).toBe('u1');
  });

  it('refuses an expired identity (beyond the clock-skew allowance)', () => {
    const header = signer.sign({ sub: 'u1', scopes: [] }, AUD, Date.now() - 120_000);
    expect(() => verifier.verify(header, 'billing')).toThrow(/expired at/);
  });

  it('refuses an identity issued in the future', () => {
    const header = signer.sign({ sub: 'u1', scopes: [] }, AUD, Date.now() + 120_000);
    expect(() => verifier.verify(header, 'billing')).toThrow('issued in the future');
  });

  it('accepts a header at every service of its audience and refuses it elsewhere, naming both', () => {
    const header = signer.sign({ sub: 'u1', scopes: ['inference:invoke'] }, AUD);
    expect(verifier.verify(header, 'inference')).toMatchObject({ sub: 'u1', aud: AUD });
    expect(verifier.verify(header, 'billing').sub).toBe('u1');
    expect(() => verifier.verify(header, 'knowledge')).toThrow('x-sluice-identity header was issued for inference, billing; expected one issued for knowledge');
    // Refused once, it is refused again: a verified header's audience is checked on every use.
    expect(() => verifier.verify(header, 'knowledge')).toThrow(IdentityError);
  });

  it('refuses the audience-less v1 format of an older gateway, saying so', () => {
    const claims = Buffer.from(JSON.stringify({ sub: 'u1', scopes: [], iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
    const signature = sign(null, Buffer.from(`v1.${claims}`), createPrivateKey(keys.privateKeyPem)).toString('base64url');
    expect(() => verifier.verify(`v1.${claims}.${signature}`, 'billing')).toThrow('x-sluice-identity header is v1, which names no audience; expected v2');
  });

  it('refuses a signed header whose audience is missing or not a list of names', () => {
    const signed = (claims: object) => {
      const payload = `v2.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      return `${payload}.${sign(null, Buffer.from(payload), createPrivateKey(keys.privateKeyPem)).toString('base64url')}`;
    };
    const now = Math.floor(Date.now() / 1000);
    for (const aud of [undefined, [], 'billing', [7]]) {
      expect(() => verifier.verify(signed({ sub: 'u1', scopes: [], aud, iat: now, exp: now + 60 }), 'billing')).toThrow('claims expect "aud" (a non-empty array of service names)');
    }
  });

  it('signs for at least one service', () => {
    expect(() => signer.sign({ sub: 'u1', scopes: [] }, [])).toThrow('expects an audience of at least one service, but got none');
  });

  it('reuses a header for the same claims and audience only', () => {
    const t0 = Date.now();
    const forInference = signer.current({ sub: 'u1', scopes: [] }, AUD, t0);
    expect(signer.current({ sub: 'u1', scopes: [] }, AUD, t0)).toBe(forInference);
    const forAuth = signer.current({ sub: 'u1', scopes: [] }, ['auth'], t0);
    expect(forAuth).not.toBe(forInference);
    expect(() => verifier.verify(forAuth, 'billing')).toThrow('issued for auth; expected one issued for billing');
  });

  it('reuses the header signed for the same claims until it is half through its life, then signs a new one', () => {
    const own = new IdentitySigner(createPrivateKey(keys.privateKeyPem), 60);
    const t0 = Date.now();
    const first = own.current({ sub: 'u1', scopes: ['knowledge:read'] }, AUD, t0);
    expect(own.current({ sub: 'u1', scopes: ['knowledge:read'] }, AUD, t0 + 30_000)).toBe(first);
    expect(own.current({ sub: 'u1', scopes: ['knowledge:read'], keyId: 'k1' }, AUD, t0)).not.toBe(first);
    expect(own.current({ sub: 'u2', scopes: ['knowledge:read'] }, AUD, t0)).not.toBe(first);
    const later = own.current({ sub: 'u1', scopes: ['knowledge:read'] }, AUD, t0 + 30_001);
    expect(later).not.toBe(first);
    expect(verifier.verify(later, 'billing', t0 + 30_001)).toMatchObject({ sub: 'u1', iat: Math.floor((t0 + 30_001) / 1000) });
  });

  it('checks the times of a header it verified before on every use, and keeps its claims unchangeable', () => {
    const t0 = Date.now();
    const header = signer.sign({ sub: 'u1', scopes: ['knowledge:read'] }, AUD, t0);
    const identity = verifier.verify(header, 'billing', t0);
    expect(verifier.verify(header, 'billing', t0 + 10_000)).toBe(identity);
    expect(() => verifier.verify(header, 'billing', t0 + 66_000)).toThrow(/expired at/);
    expect(() => verifier.verify(header, 'billing', t0 - 10_000)).toThrow('issued in the future');
    expect(() => (identity.scopes as string[]).push('admin')).toThrow(TypeError);
    // A changed copy of a verified header is verified afresh, and fails. The signature's first
    // character is changed: its last ones often end an Ed25519 signature in "AA" already.
    const start = header.lastIndexOf('.') + 1;
    const tampered = `${header.slice(0, start)}${header[start] === 'A' ? 'B' : 'A'}${header.slice(start + 1)}`;
    expect(() => verifier.verify(tampered, 'billing', t0)).toThrow('invalid signature');
  });
});
