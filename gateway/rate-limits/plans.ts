/**
 * Rate-limit plans: which limits apply to a caller. Read from
 * `GATEWAY_RATE_LIMITS`, e.g.
 *
 *   default:rpm=600,tpm=100000,streams=8; admin:rpm=6000,tpm=unlimited; anonymous:rpm=60
 *
 * Plans are separated by `;`, each `name:` then `limit=value` pairs. `default`
 * is for signed-in callers, `anonymous` for callers without credentials
 * (counted per IP address); any other name is a scope, and a signed-in caller
 * holding it gets that plan — the first such plan in the order written. A
 * limit a plan leaves out is the `default` plan's; one `default` leaves out is
 * unlimited (`streams`: GATEWAY_SUBSCRIPTIONS_PER_USER). `unlimited` lifts an
 * inherited limit.
 */
import { ConfigError } from '../../lib/config';
import type { IdentityClaims } from '../../lib/identity';

/** Each limit is a positive integer, or null when there is none. */
export interface RatePlan {
  name: string;
  /** Requests (operations) per minute, per API key — or per user for a session, per IP for anonymous callers. */
  rpm: number | null;
  /** Completion tokens per minute, counted like `rpm`: `maxTokens` at admission, corrected by real usage. */
  tpm: number | null;
  /** Live subscriptions at once, per user (per IP for anonymous callers), across every gateway process. */
  streams: number | null;
  /** Requests per minute from one IP address, whoever the caller. */
  ipRpm: number | null;
}

export type LimitName = 'rpm' | 'tpm' | 'streams' | 'ipRpm';

/** The names accepted in the variable, and the limit each sets. */
const LIMIT_KEYS: Readonly<Record<string, LimitName>> = { rpm: 'rpm', tpm: 'tpm', streams: 'streams', 'ip-rpm': 'ipRpm' };
const PLAN_NAME = /^[A-Za-z0-9_.:-]+$/;

export class RatePlans {
  private constructor(
    private readonly byScope: readonly RatePlan[],
    readonly signedIn: RatePlan,
    readonly anonymous: RatePlan,
  ) {}

  /** No request or token limits; streams limited to `streams` per user. */
  static unlimited(streams: number | null): RatePlans {
    const plan = (name: string): RatePlan => ({ name, rpm: null, tpm: null, streams, ipRpm: null });
    return new RatePlans([], plan('default'), plan('anonymous'));
  }

  /**
   * Parses the variable's value; `defaultStreams` is the `streams` limit of a
   * `default` plan that sets none. Throws ConfigError naming what was wrong.
   */
  static parse(text: string, defaultStreams: number | null, variable = 'GATEWAY_RATE_LIMITS'): RatePlans {
    const written = new Map<string, Partial<Record<LimitName, number | null>>>();
    for (const part of text
      .split(';')
      .map((p) => p.trim())
      .filter(Boolean)) {
      // Scopes have colons of their own (`knowledge:read:rpm=5`): the plan ends at the last colon before the first limit.
      const equals = part.indexOf('=');
      const colon = part.lastIndexOf(':', equals < 0 ? part.length : equals);
      const name = colon < 0 ? '' : part.slice(0, colon).trim();
      if (!name || !PLAN_NAME.test(name)) {
        throw new ConfigError(`${variable}: expected "<plan>:<limit>=<value>,…" (plan: default, anonymous or a scope), but got ${JSON.stringify(part)}`);
      }
      if (written.has(name)) throw new ConfigError(`${variable}: plan "${name}" is given twice`);
      const limits: Partial<Record<LimitName, number | null>> = {};
      for (const pair of part
        .slice(colon + 1)
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const [key, value, extra] = pair.split('=').map((s) => s.trim());
        const limit = LIMIT_KEYS[key];
        if (!limit) throw new ConfigError(`${variable}: plan "${name}" has an unknown limit ${JSON.stringify(key)}: expected one of ${Object.keys(LIMIT_KEYS).join(', ')}`);
        if (limit in limits) throw new ConfigError(`${variable}: plan "${name}" sets ${key} twice`);
        if (value === 'unlimited' && extra === undefined) limits[limit] = null;
        else if (extra === undefined && /^\d+$/.test(value ?? '') && Number(value) >= 1 && Number.isSafeInteger(Number(value))) limits[limit] = Number(value);
        else throw new ConfigError(`${variable}: plan "${name}" sets ${key} to ${JSON.stringify(value ?? '')}: expected a positive integer or "unlimited"`);
      }
      if (Object.keys(limits).length === 0) throw new ConfigError(`${variable}: plan "${name}" sets no limit: expected at least one of ${Object.keys(LIMIT_KEYS).join(', ')}`);
      written.set(name, limits);
    }
    const base = written.get('default') ?? {};
    const plan = (name: string): RatePlan => {
      const own = written.get(name) ?? {};
      const pick = (limit: LimitName, fallback: number | null) => (limit in own ? own[limit]! : limit in base ? base[limit]! : fallback);
      return { name, rpm: pick('rpm', null), tpm: pick('tpm', null), streams: pick('streams', defaultStreams), ipRpm: pick('ipRpm', null) };
    };
    const byScope = [...written.keys()].filter((name) => name !== 'default' && name !== 'anonymous').map(plan);
    return new RatePlans(byScope, plan('default'), plan('anonymous'));
  }

  /** The plan of a caller: anonymous without a subject, else the first plan named by one of its scopes, else default. */
  planFor(claims: Pick<IdentityClaims, 'sub' | 'scopes'>): RatePlan {
    if (!claims.sub) return this.anonymous;
    return this.byScope.find((plan) => claims.scopes.includes(plan.name)) ?? this.signedIn;
  }
}
