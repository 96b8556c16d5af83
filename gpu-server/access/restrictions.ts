/**
 * Restricted protocols (gRPC) and restricted APIs (HTTP), as Triton's
 * `--grpc-restricted-protocol=<categories>:<key>=<value>` and
 * `--http-restricted-api=<categories>:<key>=<value>` declare them: a request
 * to an endpoint of a restricted category must carry the header `<key>`
 * (HTTP) or `triton-grpc-protocol-<key>` (gRPC metadata) with exactly
 * `<value>`, else Triton refuses it — HTTP 403 `{"error": "This API is
 * restricted, expecting header '<key>'"}`, gRPC UNAVAILABLE "This protocol is
 * restricted, expecting header 'triton-grpc-protocol-<key>'". Each option may
 * be given several times (several groups, each with its own key); a category
 * may belong to one group only. Categories not named are open.
 */
import { ConfigError } from '../../lib/config';
import { secretMatcher } from '../../lib/secret-match';

export const RESTRICTED_CATEGORIES = ['health', 'metadata', 'inference', 'shared-memory', 'model-config', 'model-repository', 'statistics', 'trace', 'logging'] as const;

export type RestrictedCategory = (typeof RESTRICTED_CATEGORIES)[number];

/** What one restricted category demands: a header (lower case, as Node and gRPC metadata name them) and its value. */
export interface Restriction {
  header: string;
  /** True when `value` is the configured one (constant-time). */
  matches(value: string | string[] | undefined): boolean;
}

export type Restrictions = ReadonlyMap<RestrictedCategory, Restriction>;

/** Triton's gRPC metadata prefix of a restricted key. */
export const GRPC_RESTRICTED_HEADER_PREFIX = 'triton-grpc-protocol-';

/**
 * Parses groups in Triton's syntax, `<category>,<category>…:<key>=<value>`,
 * for the HTTP frontend (`protocol` 'http': the header is `<key>`) or the
 * gRPC one (the header is `triton-grpc-protocol-<key>`). `option` names the
 * flag or variable in error messages.
 */
export function parseRestrictions(groups: readonly string[], protocol: 'http' | 'grpc', option: string): Restrictions {
  const restrictions = new Map<RestrictedCategory, Restriction>();
  for (const group of groups) {
    const colon = group.lastIndexOf(':');
    const equals = group.indexOf('=', colon + 1);
    if (colon <= 0 || equals <= colon + 1 || equals === group.length - 1) {
      throw new ConfigError(`${option} expects <category>,<category>…:<key>=<value> with a non-empty key and value, but got ${JSON.stringify(group)}`);
    }
    const key = group
      .slice(colon + 1, equals)
      .trim()
      .toLowerCase();
    if (!/^[a-z0-9][a-z0-9-_.]*$/.test(key)) throw new ConfigError(`${option}: the restricted key must be a header name (letters, digits, '-', '_', '.'), but got ${JSON.stringify(key)}`);
    const restriction: Restriction = { header: protocol === 'grpc' ? `${GRPC_RESTRICTED_HEADER_PREFIX}${key}` : key, matches: secretMatcher(group.slice(equals + 1)) };
    for (const name of group
      .slice(0, colon)
      .split(',')
      .map((c) => c.trim())) {
      if (!(RESTRICTED_CATEGORIES as readonly string[]).includes(name)) {
        throw new ConfigError(`${option}: unknown category ${JSON.stringify(name)}; expected one of ${RESTRICTED_CATEGORIES.join(', ')}`);
      }
      if (restrictions.has(name as RestrictedCategory)) throw new ConfigError(`${option}: category '${name}' is in more than one group; a category may be restricted by one key only`);
      restrictions.set(name as RestrictedCategory, restriction);
    }
  }
  return restrictions;
}

/** Triton's HTTP refusal (403) message. */
export function httpRestrictedMessage(restriction: Restriction): string {
  return `This API is restricted, expecting header '${restriction.header}'`;
}

/** Triton's gRPC refusal (UNAVAILABLE) message. */
export function grpcRestrictedMessage(restriction: Restriction): string {
  return `This protocol is restricted, expecting header '${restriction.header}'`;
}
