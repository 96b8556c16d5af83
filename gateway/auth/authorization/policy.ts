/**
 * Who may see what, read once from the supergraph: the fields and types that
 * carry Federation's `@authenticated` or `@requiresScopes`. Composition
 * carries both into the supergraph behind `@link`s to
 * `https://specs.apollo.dev/authenticated/v0.1` and
 * `https://specs.apollo.dev/requiresScopes/v0.1`, whose `as:` may rename them,
 * so the directive names are taken from those links, not assumed.
 */
import { isAbstractType, Kind, parse, type ConstDirectiveNode, type DocumentNode, type GraphQLCompositeType, type GraphQLNamedType, type GraphQLSchema } from 'graphql';
import { and, NONE, requirementOf, type DirectiveNames, type Requirement } from '../../../lib/scope-rules';

export { evaluate, type Caller, type Denial, type Requirement } from '../../../lib/scope-rules';

/** The specs this gateway enforces, by `@link` URL; the first group is the spec's default directive name. */
export const ENFORCED_SPECS = /^https:\/\/specs\.apollo\.dev\/(authenticated|requiresScopes)\/v0\.1$/;

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

function stringArgument(directive: ConstDirectiveNode, name: string): string | undefined {
  const value = directive.arguments?.find((a) => a.name.value === name)?.value;
  return value?.kind === Kind.STRING ? value.value : undefined;
}
