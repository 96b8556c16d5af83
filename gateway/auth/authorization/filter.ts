/**
 * Removes from an operation the fields its caller may not see, before the
 * gateway plans it: what is removed is never fetched. Each removal is kept
 * with the path and types it had, so the response can get its `null` back
 * (see `response.ts`) and the caller an error naming the field.
 */
import {
  getNamedType,
  getOperationAST,
  isAbstractType,
  isCompositeType,
  isListType,
  isNonNullType,
  Kind,
  visit,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLOutputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionNode,
  type SelectionSetNode,
} from 'graphql';
import { evaluate, type AuthorizationPolicy, type Caller, type Denial } from './policy';

/**
 * Added next to a removal made under a type condition, so the response step
 * can tell which objects the removed field belonged to; taken out of the
 * response again before it is sent.
 */
export const TYPENAME_KEY = '__sluiceAuthzTypename';

/** One step from the response root: a response key and the field's type. */
export interface Segment {
  key: string;
  type: GraphQLOutputType;
  /** The object types this step applies to, when a type condition narrowed them. */
  types?: ReadonlySet<string>;
}

export interface Removal {
  segments: Segment[];
}

export interface Refusal {
  /** Response keys from the root to the field. */
  path: string[];
  /** Its schema coordinate, `Type.field`. */
  coordinate: string;
  denial: Denial;
}

export interface FilteredOperation {
  /** The operation to plan; the original document when nothing was removed. */
  document: DocumentNode;
  /** True when something was removed. */
  changed: boolean;
  /** True when nothing of the operation is left to send (every root field removed, or a removal nulls the whole `data`). */
  empty: boolean;
  removals: Removal[];
  refusals: Refusal[];
}

const INTROSPECTION = new Set(['__typename', '__schema', '__type']);

/** Filters the operation `operationName` of a validated document for `caller`. */
export function filterOperation(policy: AuthorizationPolicy, schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined, caller: Caller): FilteredOperation {
  const operation = getOperationAST(document, operationName ?? undefined);
  const root = operation && schema.getRootType(operation.operation);
  if (!operation || !root || policy.isEmpty) return { document, changed: false, empty: false, removals: [], refusals: [] };
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);

  const walk = new Walk(policy, schema, fragments, caller);
  const selections = walk.selections(operation.selectionSet, root, [], undefined);
  if (walk.removals.length === 0) return { document, changed: false, empty: false, removals: [], refusals: [] };
  const empty = selections.length === 0 || walk.removals.some(nullsData);
  const filtered: OperationDefinitionNode = { ...operation, selectionSet: { kind: Kind.SELECTION_SET, selections } };
  return {
    document: { kind: Kind.DOCUMENT, definitions: [withUsedVariables(filtered)] },
    changed: true,
    empty,
    removals: walk.removals,
    refusals: walk.refusals,
  };
}

class Walk {
  readonly removals: Removal[] = [];
  readonly refusals: Refusal[] = [];
  private readonly refused = new Set<string>();

  constructor(
    private readonly policy: AuthorizationPolicy,
    private readonly schema: GraphQLSchema,
    private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>,
    private readonly caller: Caller,
  ) {}

  /**
   * The allowed selections of a selection set on `scope`. Fragment spreads
   * become inline fragments: whether a fragment's fields are allowed does not
   * depend on where it is spread, but the paths in the errors do.
   * `narrowed` holds the object types left by enclosing type conditions.
   */
  selections(set: SelectionSetNode, scope: GraphQLCompositeType, path: Segment[], narrowed: ReadonlySet<string> | undefined): SelectionNode[] {
    const kept: SelectionNode[] = [];
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        const field = this.field(selection, scope, path, narrowed);
        if (field) kept.push(field);
        continue;
      }
      const fragment = selection.kind === Kind.FRAGMENT_SPREAD ? this.fragments.get(selection.name.value) : selection;
      if (!fragment) continue;
      const condition = fragment.typeCondition ? this.schema.getType(fragment.typeCondition.name.value) : scope;
      if (!condition || !isCompositeType(condition)) continue;
      const inner = this.selections(fragment.selectionSet, condition, path, this.narrow(scope, condition, narrowed));
      if (inner.length === 0) continue;
      kept.push({
        kind: Kind.INLINE_FRAGMENT,
        typeCondition: fragment.typeCondition,
        directives: selection.directives,
        selectionSet: { kind: Kind.SELECTION_SET, selections: inner },
      });
    }
    return kept;
  }

  private field(node: FieldNode, scope: GraphQLCompositeType, path: Segment[], narrowed: ReadonlySet<string> | undefined): FieldNode | undefined {
    const name = node.name.value;
    if (INTROSPECTION.has(name) || !('getFields' in scope)) return node;
    const definition = scope.getFields()[name];
    if (!definition) return node;
    const returns = getNamedType(definition.type);
    const segment: Segment = { key: node.alias?.value ?? name, type: definition.type, types: narrowed };
    const here = [...path, segment];
    const denial = evaluate(this.policy.fieldRequirement(this.schema, scope, name, returns), this.caller);
    if (denial) {
      this.remove(here);
      const keys = here.map((s) => s.key);
      const id = keys.join('.');
      if (!this.refused.has(id)) {
        this.refused.add(id);
        this.refusals.push({ path: keys, coordinate: `${scope.name}.${name}`, denial });
      }
      return undefined;
    }
    if (!node.selectionSet || !isCompositeType(returns)) return node;
    const before = this.removals.length;
    const inner = this.selections(node.selectionSet, returns, here, undefined);
    // A field with nothing left to select cannot be sent: it goes too, and its null stands for it.
    if (inner.length === 0) {
      this.remove(here);
      return undefined;
    }
    // Rebuilt even when nothing below was removed: fragment spreads are inlined, and the filtered document carries no fragment definitions.
    const needsTypename = this.removals.slice(before).some((r) => r.segments[here.length]?.types);
    const selections: SelectionNode[] = needsTypename ? [...inner, typenameField()] : inner;
    return { ...node, selectionSet: { kind: Kind.SELECTION_SET, selections } };
  }

  private remove(segments: Segment[]): void {
    this.removals.push({ segments });
  }

  /** The object types a type condition leaves, or undefined when it leaves all of `scope`'s. */
  private narrow(scope: GraphQLCompositeType, condition: GraphQLCompositeType, narrowed: ReadonlySet<string> | undefined): ReadonlySet<string> | undefined {
    const all = this.objectTypes(scope);
    const wanted = this.objectTypes(condition);
    const left = [...(narrowed ?? all)].filter((t) => wanted.has(t));
    return left.length === all.size ? narrowed : new Set(left);
  }

  private objectTypes(type: GraphQLCompositeType): Set<string> {
    return new Set(isAbstractType(type) ? this.schema.getPossibleTypes(type).map((t) => t.name) : [type.name]);
  }
}

function typenameField(): FieldNode {
  return { kind: Kind.FIELD, alias: { kind: Kind.NAME, value: TYPENAME_KEY }, name: { kind: Kind.NAME, value: '__typename' } };
}

/** Whether a removal's null propagates all the way up to `data`: every step and every list item on the way is non-null. */
function nullsData(removal: Removal): boolean {
  return removal.segments.every((segment) => !segment.types && nonNullThroughout(segment.type));
}

function nonNullThroughout(type: GraphQLOutputType): boolean {
  if (!isNonNullType(type)) return false;
  return isListType(type.ofType) ? nonNullThroughout(type.ofType.ofType) : true;
}

/** Drops the variable definitions only removed fields used: a GraphQL operation may not declare unused variables. */
function withUsedVariables(operation: OperationDefinitionNode): OperationDefinitionNode {
  const used = new Set<string>();
  visit(operation.selectionSet, { Variable: (node) => void used.add(node.name.value) });
  for (const directive of operation.directives ?? []) visit(directive, { Variable: (node) => void used.add(node.name.value) });
  const variableDefinitions = (operation.variableDefinitions ?? []).filter((d) => used.has(d.variable.name.value));
  return { ...operation, variableDefinitions };
}
