/**
 * Who may see what, read once from the supergraph: the fields and types that
 * carry Federation's `@authenticated` or `@requiresScopes`. Composition
 * carries both into the supergraph behind `@link`s to
 * `https://specs.apollo.dev/authenticated/v0.1` and
 * `https://specs.apollo.dev/requiresScopes/v0.1`, whose `as:` may rename them,
 * so the directive names are taken from those links, not assumed.
 */
import {
  isAbstractType,
  Kind,
  parse,
  type ConstDirectiveNode,
  type ConstValueNode,
  type DocumentNode,
  type GraphQLCompositeType,
  type GraphQLNamedType,
  type GraphQLSchema,
} from 'graphql';

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
export type Denial =
  | { code: 'UNAUTHENTICATED' }
  | { code: 'FORBIDDEN'; required: string[][][]; missing: string[] };

export interface Caller {
  sub: string | null;
  scopes: readonly string[];
}

/** The specs this gateway enforces, by `@link` URL; the first group is the spec's default directive name. */
export const ENFORCED_SPECS = /^https:\/\/specs\.apollo\.dev\/(authenticated|requiresScopes)\/v0\.1$/;

const NONE: Requirement = { authenticated: false, scopes: [] };

export class AuthorizationPolicy {
  private constructor(
    private readonly types: ReadonlyMap<string, Requirement>,
    /** By schema coordinate, `Type.field`. */
    private readonly fields: ReadonlyMap<string, Requirement>,
  ) {}

  static fromSupergraph(supergraphSdl: string): AuthorizationPolicy {
    const document = parse(supergraphSdl);
    const names = directiveNames(document);
    const types = new Map<string, Requirement>();
    const fields = new Map<string, Requirement>();
    const add = (map: Map<string, Requirement>, key: string, directives: readonly ConstDirectiveNode[] | undefined) => {
      const found = requirementOf(directives ?? [], names);
      if (found) map.set(key, and(map.get(key) ?? NONE, found));
    };
    for (const definition of document.definitions) {
      switch (definition.kind) {
        case Kind.OBJECT_TYPE_DEFINITION:
        case Kind.OBJECT_TYPE_EXTENSION:
        case Kind.INTERFACE_TYPE_DEFINITION:
        case Kind.INTERFACE_TYPE_EXTENSION:
          add(types, definition.name.value, definition.directives);
          for (const field of definition.fields ?? []) add(fields, `${definition.name.value}.${field.name.value}`, field.directives);
          break;
        case Kind.SCALAR_TYPE_DEFINITION:
        case Kind.SCALAR_TYPE_EXTENSION:
        case Kind.ENUM_TYPE_DEFINITION:
        case Kind.ENUM_TYPE_EXTENSION:
          add(types, definition.name.value, definition.directives);
          break;
        default:
          break;
      }
    }
    return new AuthorizationPolicy(types, fields);
  }

  /** True when nothing in the graph is restricted: requests need no filtering at all. */
  get isEmpty(): boolean {
    return this.types.size === 0 && this.fields.size === 0;
  }

  /**
   * What a type demands of whoever reaches it. An abstract type demands what
   * each of its possible types does: any of them may come back.
   */
  typeRequirement(schema: GraphQLSchema, type: GraphQLNamedType): Requirement {
    let requirement = this.types.get(type.name) ?? NONE;
    if (isAbstractType(type)) {
      for (const possible of schema.getPossibleTypes(type)) requirement = and(requirement, this.types.get(possible.name) ?? NONE);
    }
    return requirement;
  }

  /**
   * What selecting `field` on `parent` demands, as Apollo Router applies it:
   * the field's own directives, those of the type it returns, those of the
   * type it is selected on and — on an interface — those of the field in every
   * implementation, since any of them may resolve it.
   */
  fieldRequirement(schema: GraphQLSchema, parent: GraphQLCompositeType, field: string, returns: GraphQLNamedType): Requirement {
    let requirement = and(this.fields.get(`${parent.name}.${field}`) ?? NONE, this.typeRequirement(schema, returns));
    requirement = and(requirement, this.typeRequirement(schema, parent));
    if (isAbstractType(parent)) {
      for (const possible of schema.getPossibleTypes(parent)) requirement = and(requirement, this.fields.get(`${possible.name}.${field}`) ?? NONE);
    }
    return requirement;
  }
}

/** Whether `caller` meets `requirement`. An anonymous caller meets no requirement at all: it has no scopes either. */
export function evaluate(requirement: Requirement, caller: Caller): Denial | undefined {
  if (!requirement.authenticated && requirement.scopes.length === 0) return undefined;
  if (!caller.sub) return { code: 'UNAUTHENTICATED' };
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
  return { code: 'FORBIDDEN', required: unmet, missing: [...missing] };
}

function and(a: Requirement, b: Requirement): Requirement {
  if (b === NONE) return a;
  if (a === NONE) return b;
  const scopes = [...a.scopes];
  const seen = new Set(scopes.map((c) => JSON.stringify(c)));
  for (const condition of b.scopes) if (!seen.has(JSON.stringify(condition))) scopes.push(condition);
  return { authenticated: a.authenticated || b.authenticated, scopes };
}

interface DirectiveNames {
  authenticated?: string;
  requiresScopes?: string;
}

/** The names the supergraph's `@link`s give the two specs, or none when a spec is not linked (and so not used). */
function directiveNames(document: DocumentNode): DirectiveNames {
  const names: DirectiveNames = {};
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    for (const directive of definition.directives ?? []) {
      if (directive.name.value !== 'link') continue;
      const url = stringArgument(directive, 'url');
      const as = stringArgument(directive, 'as');
      const spec = url && ENFORCED_SPECS.exec(url);
      if (spec) names[spec[1] as keyof DirectiveNames] = as ?? spec[1];
    }
  }
  return names;
}

function requirementOf(directives: readonly ConstDirectiveNode[], names: DirectiveNames): Requirement | undefined {
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

function stringArgument(directive: ConstDirectiveNode, name: string): string | undefined {
  const value = directive.arguments?.find((a) => a.name.value === name)?.value;
  return value?.kind === Kind.STRING ? value.value : undefined;
}

/** A list value, or a single value standing for a list of one (GraphQL input coercion). */
function listOf(value: ConstValueNode): readonly ConstValueNode[] {
  return value.kind === Kind.LIST ? value.values : [value];
}

function stringValue(value: ConstValueNode): string {
  if (value.kind !== Kind.STRING) throw new Error(`@requiresScopes expects scope strings, got a ${value.kind}`);
  return value.value;
}
