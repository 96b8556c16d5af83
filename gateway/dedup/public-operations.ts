/**
 * Which operations give every caller the same answer, so that one caller's
 * result may be handed to another. An operation is public when
 *
 * - each of its root fields is listed as public (GATEWAY_DEDUP_PUBLIC_FIELDS)
 *   or is introspection, and
 * - no field it selects, at any depth, needs authentication or a scope
 *   (the supergraph's @authenticated/@requiresScopes, read by the
 *   authorization policy): then the caller's scopes change nothing in it.
 *
 * The policy alone is not enough: `Query.me` needs no authentication, yet it
 * answers with whoever asks. Whether a resolver reads the caller cannot be
 * seen from the graph, so public root fields are named, not guessed; a field
 * not named is treated as the caller's own, which only costs sharing.
 */
import {
  getNamedType,
  getOperationAST,
  isCompositeType,
  isObjectType,
  isInterfaceType,
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import { ConfigError } from '../../lib/config';
import type { AuthorizationPolicy } from '../auth/authorization/policy';

/** The root fields shared between callers unless configured otherwise: the public model catalogue. */
export const DEFAULT_PUBLIC_FIELDS = 'Query.models,Query.model';

const INTROSPECTION_ROOTS = new Set(['__schema', '__type', '__typename']);

/** `Type.field` coordinates, comma-separated, refusing anything else with the variable's name. */
export function parsePublicFields(variable: string, raw: string): ReadonlySet<string> {
  const fields = new Set<string>();
  for (const entry of raw
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    if (!/^[A-Za-z_]\w*\.[A-Za-z_]\w*$/.test(entry)) {
      throw new ConfigError(`${variable} expects comma-separated Type.field coordinates (e.g. "Query.models"), but got ${JSON.stringify(entry)}`);
    }
    fields.add(entry);
  }
  return fields;
}

export class PublicOperations {
  /** By document hash and operation name: the verdict depends only on the document once the schema is fixed. */
  private readonly verdicts = new Map<string, boolean>();

  constructor(
    private readonly policy: AuthorizationPolicy,
    private readonly publicFields: ReadonlySet<string>,
    private readonly limit = 10_000,
  ) {}

  isPublic(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, documentHash: string): boolean {
    const key = `${documentHash}\n${operationName ?? ''}`;
    let verdict = this.verdicts.get(key);
    if (verdict === undefined) {
      verdict = this.judge(schema, document, operationName);
      if (this.verdicts.size >= this.limit) this.verdicts.clear();
      this.verdicts.set(key, verdict);
    }
    return verdict;
  }

  private judge(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined): boolean {
    const operation = getOperationAST(document, operationName ?? undefined);
    const root = operation && schema.getRootType(operation.operation);
    if (operation?.operation !== 'query' || !root) return false;
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);

    const rootFieldsArePublic = (set: SelectionSetNode, seen: ReadonlySet<string>): boolean =>
      set.selections.every((selection) => {
        if (selection.kind === Kind.FIELD) return INTROSPECTION_ROOTS.has(selection.name.value) || this.publicFields.has(`${root.name}.${selection.name.value}`);
        if (selection.kind === Kind.INLINE_FRAGMENT) return rootFieldsArePublic(selection.selectionSet, seen);
        const fragment = fragments.get(selection.name.value);
        return !!fragment && (seen.has(fragment.name.value) || rootFieldsArePublic(fragment.selectionSet, new Set([...seen, fragment.name.value])));
      });

    const needsNothing = (set: SelectionSetNode, parent: GraphQLCompositeType, seen: ReadonlySet<string>): boolean =>
      set.selections.every((selection) => {
        if (selection.kind === Kind.FIELD) {
          const name = selection.name.value;
          if (name === '__typename') return true;
          if (parent === root && (name === '__schema' || name === '__type')) return true; // the schema is the same for everyone
          const field = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
          if (!field) return false;
          const returns = getNamedType(field.type);
          const requirement = this.policy.fieldRequirement(schema, parent, name, returns);
          if (requirement.authenticated || requirement.scopes.length > 0) return false;
          return !selection.selectionSet || (isCompositeType(returns) && needsNothing(selection.selectionSet, returns, seen));
        }
        const condition = selection.kind === Kind.INLINE_FRAGMENT ? selection.typeCondition : fragments.get(selection.name.value)?.typeCondition;
        const scope = condition ? schema.getType(condition.name.value) : parent;
        if (!scope || !isCompositeType(scope)) return false;
        if (selection.kind === Kind.INLINE_FRAGMENT) return needsNothing(selection.selectionSet, scope, seen);
        const fragment = fragments.get(selection.name.value);
        return !!fragment && (seen.has(fragment.name.value) || needsNothing(fragment.selectionSet, scope, new Set([...seen, fragment.name.value])));
      });

    return rootFieldsArePublic(operation.selectionSet, new Set()) && needsNothing(operation.selectionSet, root, new Set());
  }
}
