/**
 * The rules of Federation's `@authenticated` and `@requiresScopes`, shared by
 * the gateway (which enforces them on the supergraph before planning) and by
 * every subgraph (which enforces its own schema's again, so that a service
 * calling a sibling with a caller's identity gets no more than the caller could).
 */
import { Kind, type ConstDirectiveNode, type ConstValueNode } from 'graphql';
import { ErrorCode } from './errors';

/**
 * What a field or type demands. `scopes` is a conjunction of conditions, one
 * per `@requiresScopes` met on the way; each condition is a disjunction of
 * scope sets, as in `@requiresScopes(scopes: [["a", "b"], ["c"]])`: (a AND b) OR c.
 */
export interface Requirement {
  authenticated: boolean;
  scopes: string[][][];
}

/** Why a caller may not see something, or undefined when they may. */
export type Denial = { code: ErrorCode.Unauthenticated } | { code: ErrorCode.Forbidden; required: string[][][]; missing: string[] };

export interface Caller {
  sub: string | null;
  scopes: readonly string[];
}

export const NONE: Requirement = { authenticated: false, scopes: [] };

/** Whether `caller` meets `requirement`. An anonymous caller meets no requirement at all: it has no scopes either. */
export function evaluate(requirement: Requirement, caller: Caller): Denial | undefined {
  if (!requirement.authenticated && requirement.scopes.length === 0) return undefined;
  if (!caller.sub) return { code: ErrorCode.Unauthenticated };
  const granted = new Set(caller.scopes);
  const unmet = requirement.scopes.filter((alternatives) => !alternatives.some((set) => set.every((scope) => granted.has(scope))));
  if (unmet.length === 0) return undefined;
  // For each unmet condition, the alternative closest to being met says what is missing.
  const missing = new Set<string>();
  for (const alternatives of unmet) {
    const gaps = alternatives.map((set) => set.filter((scope) => !granted.has(scope)));
    const closest = gaps.reduce((best, gap) => (gap.length < best.length ? gap : best), gaps[0] ?? []);
    for (const scope of closest) missing.add(scope);
  }
  return { code: ErrorCode.Forbidden, required: unmet, missing: [...missing] };
}

export function and(a: Requirement, b: Requirement): Requirement {
  if (b === NONE) return a;
  if (a === NONE) return b;
  const scopes = [...a.scopes];
  const seen = new Set(scopes.map((c) => JSON.stringify(c)));
  for (const condition of b.scopes) if (!seen.has(JSON.stringify(condition))) scopes.push(condition);
  return { authenticated: a.authenticated || b.authenticated, scopes };
}

/** The names the two directives go by where they are used. */
export interface DirectiveNames {
  authenticated?: string;
  requiresScopes?: string;
}

export function requirementOf(directives: readonly ConstDirectiveNode[], names: DirectiveNames): Requirement | undefined {
  let found: Requirement | undefined;
  for (const directive of directives) {
    if (directive.name.value === names.authenticated) found = and(found ?? NONE, { authenticated: true, scopes: [] });
    if (directive.name.value === names.requiresScopes) {
      const argument = directive.arguments?.find((a) => a.name.value === 'scopes');
      const alternatives = argument ? listOf(argument.value).map((set) => listOf(set).map(stringValue)) : [];
      found = and(found ?? NONE, { authenticated: false, scopes: [alternatives] });
    }
  }
  return found;
}

/** A list value, or a single value standing for a list of one (GraphQL input coercion). */
function listOf(value: ConstValueNode): readonly ConstValueNode[] {
  return value.kind === Kind.LIST ? value.values : [value];
}

function stringValue(value: ConstValueNode): string {
  if (value.kind !== Kind.STRING) throw new Error(`@requiresScopes expects scope strings, got a ${value.kind}`);
  return value.value;
}

/** What a caller refused a field is told: what was wrong, what was expected, what was got. */
export function denialError(field: string, coordinate: string, denial: Denial, caller: Caller): { message: string; extensions: Record<string, unknown> } {
  if (denial.code === ErrorCode.Unauthenticated) {
    return {
      message: `the field ${field} requires a signed-in caller: expected a session token or an API key in "Authorization: Bearer …", got an anonymous request`,
      extensions: { code: ErrorCode.Unauthenticated, field: coordinate },
    };
  }
  const expected = denial.required.map((alternatives) => alternatives.map((set) => set.join(' and ')).join(' or ')).join(', and ');
  const got = caller.scopes.length ? caller.scopes.join(', ') : 'no scopes';
  return {
    message: `the field ${field} needs the scope ${denial.missing.join(', ')}: expected ${expected}, got ${got}`,
    extensions: { code: ErrorCode.Forbidden, field: coordinate, missingScopes: denial.missing, requiredScopes: denial.required, grantedScopes: [...caller.scopes] },
  };
}
