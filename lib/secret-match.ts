import { timingSafeEqual } from 'node:crypto';

/**
 * A comparison of a presented secret (a header's value) with the expected
 * one, for the checks every request passes through (metrics tokens, the
 * gpu-server's restricted categories): the expected bytes are encoded once,
 * and the comparison takes the same time wherever the first wrong byte is,
 * so timing does not reveal how much of a guess was right.
 */
export function secretMatcher(expected: string): (presented: string | string[] | undefined) => boolean {
  const want = Buffer.from(expected);
  return (presented) => {
    if (typeof presented !== 'string') return false;
    const got = Buffer.from(presented);
    return got.length === want.length && timingSafeEqual(got, want);
  };
}

/**
 * The check of `Authorization: Bearer <token>` for an endpoint guarded by a
 * token (`/metrics`), or undefined when no token is configured and the
 * endpoint is open.
 */
export function bearerMatcher(token: string | undefined): ((authorization: string | undefined) => boolean) | undefined {
  return token === undefined ? undefined : secretMatcher(`Bearer ${token}`);
}
