/**
 * The session-token contract between the auth service, which signs session
 * JWTs, and the gateway, which verifies them: one definition, so the two can
 * never disagree on what a valid token says.
 */
export const SESSION_ISSUER = 'sluice-auth';
export const SESSION_AUDIENCE = 'sluice';
/** Ed25519 only: a verifier that accepts one algorithm cannot be talked into another. */
export const SESSION_ALGORITHM = 'EdDSA';
