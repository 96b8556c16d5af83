import { defaultFieldResolver, GraphQLError, isObjectType, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql';
import type { Identity } from './identity';
import { denialError, evaluate, requirementOf, type Requirement } from './scope-rules';

/** Federation 2 imports the directives under their own names unless a `@link` renames them; our schemas do not. */
const NAMES = { authenticated: 'authenticated', requiresScopes: 'requiresScopes' };

/**
 * Enforces the subgraph's own `@authenticated` / `@requiresScopes` on every
 * field that declares them, against the signed identity of the request. The
 * gateway already refused such fields before planning; this second check is
 * what makes a sibling call safe: a service forwarding a caller's identity to
 * this one can reach nothing the caller could not reach through the gateway.
 */
export function enforceFieldAuthorization(schema: GraphQLSchema): void {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const requirement = requirementOf(field.astNode?.directives ?? [], NAMES);
      if (!requirement) continue;
      const coordinate = `${type.name}.${field.name}`;
      field.resolve = guarded(field.resolve ?? defaultFieldResolver, requirement, coordinate);
      if (field.subscribe) field.subscribe = guarded(field.subscribe, requirement, coordinate);
    }
  }
}

function guarded(resolve: GraphQLFieldResolver<unknown, unknown>, requirement: Requirement, coordinate: string): GraphQLFieldResolver<unknown, unknown> {
  return (source, args, context, info) => {
    const identity = (context as { identity: Identity }).identity;
    const denial = evaluate(requirement, identity);
    if (denial) {
      const { message, extensions } = denialError(`"${coordinate}"`, coordinate, denial, identity);
      throw new GraphQLError(message, { extensions });
    }
    return resolve(source, args, context, info);
  };
}
