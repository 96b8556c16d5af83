/**
 * Demand control (issue 7): the cost of an operation is estimated before it
 * is planned, from the `@cost` and `@listSize` directives of the IBM GraphQL
 * cost specification as Apollo Federation composes them (the
 * `https://specs.apollo.dev/cost/v0.1` link), and, when enforced, an
 * operation over budget is refused with COST_LIMIT and the estimate. On a
 * graph that declares no costs and no limit configured, estimates are only
 * measured (issue 19): a default list size is a guess, and a guess must not
 * refuse another team's legitimate queries.
 *
 * The estimate, as Apollo Router's static cost: a composite field weighs 1, a
 * leaf 0, unless `@cost(weight)` on the field (or on its type) says
 * otherwise; a list field multiplies its element's cost (weight plus
 * selections) by its size — the largest slicing argument given (literal,
 * variable or default), else `@listSize(assumedSize)`, else the configured
 * default — and a mutation adds 10. Fragments are counted where they are
 * spread; a selection on an abstract type counts every branch (an upper bound).
 */
import {
  getNamedType,
  getNullableType,
  getOperationAST,
  GraphQLError,
  isCompositeType,
  isListType,
  Kind,
  parse,
  valueFromAST,
  type ConstDirectiveNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import { ConfigError, type Env } from '../../lib/config';
import { ErrorCode, httpStatusFor } from '../../lib/errors';

const COST_SPEC = /^https:\/\/specs\.apollo\.dev\/cost\/v0\.\d+$/;
const MUTATION_COST = 10;

interface ListSize {
  assumedSize?: number;
  slicingArguments?: string[];
}

/** What the supergraph says about cost, by schema coordinate (`Type.field`) and by type. */
export interface CostDirectives {
  fieldWeights: ReadonlyMap<string, number>;
  typeWeights: ReadonlyMap<string, number>;
  listSizes: ReadonlyMap<string, ListSize>;
}

/** `enforce` refuses operations over the budget; `measure` only records their estimates. */
export type CostMode = 'enforce' | 'measure';
const COST_MODES = ['auto', 'enforce', 'measure'] as const;

/** The budget enforced when none is configured, on a graph that declares its costs. */
export const DEFAULT_MAX_COST = 5_000;

export interface DemandControlOptions {
  /**
   * `auto` enforces when GATEWAY_MAX_COST is set or the supergraph declares `@cost` or `@listSize`, and only
   * measures otherwise; `enforce` and `measure` say so whatever the graph (GATEWAY_COST_MODE). @default auto
   */
  mode: CostMode | 'auto';
  /** Highest estimated cost an operation may have when enforced; unset is 5000 (GATEWAY_MAX_COST). @default unset */
  maxCost: number | undefined;
  /** Size assumed for a list field that says nothing about its size (GATEWAY_COST_DEFAULT_LIST_SIZE). @default 10 */
  defaultListSize: number;
  /** Add `extensions.cost { estimated, max }` to every response, as Hive Gateway's `includeExtensionMetadata` (GATEWAY_COST_EXTENSION). @default false */
  extension: boolean;
}

export function demandControlFromEnv(env: Env): DemandControlOptions {
  const mode = env.string('GATEWAY_COST_MODE', 'auto');
  if (!(COST_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError(`GATEWAY_COST_MODE expects one of ${COST_MODES.map((m) => `"${m}"`).join(', ')}, but got ${JSON.stringify(mode)}`);
  }
  return {
    mode: mode as DemandControlOptions['mode'],
    maxCost: env.string('GATEWAY_MAX_COST') === undefined ? undefined : env.int('GATEWAY_MAX_COST', DEFAULT_MAX_COST, { min: 1 }),
    defaultListSize: env.int('GATEWAY_COST_DEFAULT_LIST_SIZE', 10, { min: 0 }),
    extension: env.bool('GATEWAY_COST_EXTENSION', false),
  };
}

/** What the gateway does with estimates on this graph: enforce a budget, or only measure. */
export interface CostPolicy {
  mode: CostMode;
  maxCost: number;
}

/** Enforced when asked, when a budget is configured, or when the graph declares what is expensive; else measured. */
export function costPolicy(directives: CostDirectives, options: Pick<DemandControlOptions, 'mode' | 'maxCost'>): CostPolicy {
  const declared = directives.fieldWeights.size + directives.typeWeights.size + directives.listSizes.size > 0;
  const enforced = options.mode === 'enforce' || (options.mode === 'auto' && (options.maxCost !== undefined || declared));
  return { mode: enforced ? 'enforce' : 'measure', maxCost: options.maxCost ?? DEFAULT_MAX_COST };
}

/** Reads `@cost` and `@listSize` from a supergraph SDL, under whatever names its cost `@link` gives them. */
export function costDirectivesFromSupergraph(supergraphSdl: string): CostDirectives {
  const document = parse(supergraphSdl);
  const names = { cost: 'cost', listSize: 'listSize' };
  let linked = false;
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.SCHEMA_DEFINITION && definition.kind !== Kind.SCHEMA_EXTENSION) continue;
    for (const directive of definition.directives ?? []) {
      const url = argument(directive, 'url');
      if (directive.name.value !== 'link' || url?.kind !== Kind.STRING || !COST_SPEC.test(url.value)) continue;
      linked = true;
      const imports = argument(directive, 'import');
      for (const item of imports?.kind === Kind.LIST ? imports.values : []) {
        // An import is "@name" or { name: "@name", as: "@alias" }.
        if (item.kind === Kind.OBJECT) {
          const name = item.fields.find((f) => f.name.value === 'name')?.value;
          const as = item.fields.find((f) => f.name.value === 'as')?.value;
          if (name?.kind === Kind.STRING && as?.kind === Kind.STRING) names[name.value.slice(1) as keyof typeof names] = as.value.slice(1);
        }
      }
    }
  }
  const fieldWeights = new Map<string, number>();
  const typeWeights = new Map<string, number>();
  const listSizes = new Map<string, ListSize>();
  if (!linked) return { fieldWeights, typeWeights, listSizes };
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OBJECT_TYPE_DEFINITION && definition.kind !== Kind.INTERFACE_TYPE_DEFINITION) continue;
    const weight = weightOf(definition.directives, names.cost);
    if (weight !== undefined) typeWeights.set(definition.name.value, weight);
    for (const field of definition.fields ?? []) {
      const coordinate = `${definition.name.value}.${field.name.value}`;
      const fieldWeight = weightOf(field.directives, names.cost);
      if (fieldWeight !== undefined) fieldWeights.set(coordinate, fieldWeight);
      const size = field.directives?.find((d) => d.name.value === names.listSize);
      if (size) {
        const assumed = argument(size, 'assumedSize');
        const slicing = argument(size, 'slicingArguments');
        listSizes.set(coordinate, {
          assumedSize: assumed?.kind === Kind.INT ? Number(assumed.value) : undefined,
          slicingArguments: slicing?.kind === Kind.LIST ? slicing.values.flatMap((v) => (v.kind === Kind.STRING ? [v.value] : [])) : undefined,
        });
      }
    }
  }
  return { fieldWeights, typeWeights, listSizes };
}

/** The estimated cost of the named (or only) operation of a validated document. */
export function estimateCost(
  schema: GraphQLSchema,
  directives: CostDirectives,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown>,
  defaultListSize: number,
): number {
  const operation = getOperationAST(document, operationName ?? undefined);
  const root = operation && schema.getRootType(operation.operation);
  if (!operation || !root) return 0;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);

  const listSize = (coordinate: string, field: GraphQLField<unknown, unknown>, node: FieldNode): number => {
    const declared = directives.listSizes.get(coordinate);
    const sizes = (declared?.slicingArguments ?? []).flatMap((name) => {
      const given = node.arguments?.find((a) => a.name.value === name);
      const definition = field.args.find((a) => a.name === name);
      const value = given && definition ? valueFromAST(given.value, definition.type, variables) : definition?.defaultValue;
      return typeof value === 'number' ? [value] : [];
    });
    if (sizes.length) return Math.max(...sizes);
    return declared?.assumedSize ?? defaultListSize;
  };

  const selectionCost = (parent: GraphQLCompositeType, set: SelectionSetNode, seen: ReadonlySet<string>): number => {
    let total = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) total += fieldCost(parent, selection, seen);
      else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const type = selection.typeCondition ? (schema.getType(selection.typeCondition.name.value) as GraphQLCompositeType | undefined) : parent;
        if (type) total += selectionCost(type, selection.selectionSet, seen);
      } else {
        const fragment = fragments.get(selection.name.value);
        const type = fragment && (schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType | undefined);
        if (fragment && type && !seen.has(fragment.name.value)) total += selectionCost(type, fragment.selectionSet, new Set([...seen, fragment.name.value]));
      }
    }
    return total;
  };

  const fieldCost = (parent: GraphQLCompositeType, node: FieldNode, seen: ReadonlySet<string>): number => {
    if (!('getFields' in parent)) return 0; // a union has no fields of its own but __typename
    const field = parent.getFields()[node.name.value];
    if (!field) return 0; // __typename and introspection
    const coordinate = `${parent.name}.${field.name}`;
    const named = getNamedType(field.type);
    const weight = directives.fieldWeights.get(coordinate) ?? directives.typeWeights.get(named.name) ?? (isCompositeType(named) ? 1 : 0);
    const children = node.selectionSet && isCompositeType(named) ? selectionCost(named, node.selectionSet, seen) : 0;
    return isListType(getNullableType(field.type)) ? listSize(coordinate, field, node) * (weight + children) : weight + children;
  };

  return (operation.operation === 'mutation' ? MUTATION_COST : 0) + selectionCost(root, operation.selectionSet, new Set());
}

/** COST_LIMIT with the estimate, or undefined when the operation is within budget. */
export function checkCost(estimatedCost: number, options: { maxCost: number }): GraphQLError | undefined {
  if (estimatedCost <= options.maxCost) return undefined;
  return new GraphQLError(`the operation's estimated cost is ${estimatedCost}, over the limit of ${options.maxCost}: request fewer items (smaller "first" or "k") or fewer fields`, {
    extensions: { code: ErrorCode.CostLimit, estimatedCost, maxCost: options.maxCost, http: { status: httpStatusFor(ErrorCode.CostLimit) } },
  });
}

function argument(directive: ConstDirectiveNode, name: string) {
  return directive.arguments?.find((a) => a.name.value === name)?.value;
}

function weightOf(directives: readonly ConstDirectiveNode[] | undefined, name: string): number | undefined {
  const weight = directives?.find((d) => d.name.value === name);
  const value = weight && argument(weight, 'weight');
  return value?.kind === Kind.INT ? Number(value.value) : undefined;
}
