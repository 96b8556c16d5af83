/**
 * The final shaping of a plan's merged subgraph data to the operation's
 * selection (aliases, `__typename`, abstract types, `@skip`/`@include`),
 * compiled once per operation: the same walk as @apollo/gateway's
 * `computeResponse` (resultShaping.ts), with every schema lookup, directive
 * read and type test done ahead.
 *
 * Only the error-free path is compiled. Whatever would make stock report an
 * error or fail an assertion (a null in a non-null field, an invalid leaf or
 * `__typename`, a non-boolean `if` variable, a value of the wrong kind)
 * throws {@link NOT_PLAIN}, and the caller shapes that response with stock's
 * own `computeResponse` instead: errors, their paths and null propagation are
 * then stock's by construction. Shaping never mutates its input, so the
 * retry sees the same data.
 */
import {
  type CompositeType,
  type FieldSelection,
  type FragmentSelection,
  isCompositeType,
  isListType,
  isNonNullType,
  isObjectType,
  isSubtype,
  isValidLeafValue,
  type NamedType,
  type Operation,
  type Schema,
  type SelectionSet,
  type Type,
  typenameFieldName,
  Variable,
} from '@apollo/federation-internals';

/** Thrown when the response needs stock's shaping (see the module comment). */
export const NOT_PLAIN: unique symbol = Symbol('not plain');

/** A `@skip`/`@include` argument: a constant, or the name of the variable holding it. */
type Condition = boolean | string;

interface Conditions {
  skipIf?: Condition;
  includeIf?: Condition;
}

enum Kind {
  NonNull,
  List,
  Composite,
  Leaf,
}

type ValueShape = { kind: Kind.NonNull; of: ValueShape } | { kind: Kind.List; of: ValueShape } | { kind: Kind.Composite; type: CompositeType } | { kind: Kind.Leaf; type: Type };

interface FieldStep extends Conditions {
  field: true;
  responseName: string;
  /** `__typename` (under any alias): answered from the data's or the parent's type. */
  typename: boolean;
  shape: ValueShape;
  selection?: Step[];
}

interface FragmentStep extends Conditions {
  field: false;
  typeCondition?: CompositeType;
  selection: Step[];
  /** Whether the type condition applies, by the data's `__typename` or by the parent type. */
  byTypename: Map<string, boolean>;
  byParent: Map<NamedType, boolean>;
}

type Step = FieldStep | FragmentStep;

/** An operation's shaping, compiled. */
export interface Shaper {
  /** Stock's `data` for this input and these variables (the request's, before defaults), or throws {@link NOT_PLAIN}. */
  shape(input: Record<string, unknown>, variables: Record<string, unknown> | undefined): Record<string, unknown>;
}

const own = Object.prototype.hasOwnProperty;

/** Compiles the shaping of `operation`; undefined when it selects schema introspection (`__schema`, `__type`), which stock answers by executing it. */
export function compileShaper(operation: Operation): Shaper | undefined {
  const schema = operation.schema();
  const rootType = schema.schemaDefinition.rootType(operation.rootKind);
  if (!rootType) return undefined;
  const compiled = compileSelectionSet(operation.selectionSet);
  if (!compiled) return undefined;
  const { steps, conditional } = compiled;
  const defaults = operation.collectDefaultedVariableValues();
  const hasDefaults = Object.keys(defaults).length > 0;
  // Only names the schema has are kept: the names looked up come from subgraph data.
  const types = new Map<string, NamedType>();
  const typeNamed = (name: string): NamedType | undefined => {
    let type = types.get(name);
    if (!type) {
      type = schema.type(name);
      if (type) types.set(name, type);
    }
    return type;
  };

  return {
    shape(input, variables) {
      const values: Record<string, unknown> = conditional && hasDefaults ? { ...defaults, ...variables } : (variables ?? {});
      const walk = new Walk(schema, values, typeNamed);
      // No prototype, as stock's: a field aliased `__proto__` is then an ordinary key.
      const data: Record<string, unknown> = Object.create(null);
      walk.apply(input, steps, data, rootType);
      return data;
    },
  };
}

/** The steps of a selection set, and whether any of them (at any depth) depends on a variable. */
function compileSelectionSet(selectionSet: SelectionSet): { steps: Step[]; conditional: boolean } | undefined {
  const steps: Step[] = [];
  let conditional = false;
  for (const selection of selectionSet.selections()) {
    const conditions = conditionsOf(selection);
    if (conditions === undefined) return undefined;
    conditional ||= typeof conditions.skipIf === 'string' || typeof conditions.includeIf === 'string';
    let sub: { steps: Step[]; conditional: boolean } | undefined;
    if (selection.selectionSet) {
      sub = compileSelectionSet(selection.selectionSet);
      if (!sub) return undefined;
      conditional ||= sub.conditional;
    }
    if (selection.kind === 'FieldSelection') {
      const step = fieldStep(selection, conditions, sub?.steps);
      if (!step) return undefined;
      steps.push(step);
    } else {
      steps.push({ field: false, ...conditions, typeCondition: selection.element.typeCondition, selection: sub?.steps ?? [], byTypename: new Map(), byParent: new Map() });
    }
  }
  return { steps, conditional };
}

function fieldStep(selection: FieldSelection, conditions: Conditions, selectionSteps: Step[] | undefined): FieldStep | undefined {
  const field = selection.element;
  if (field.definition.isSchemaIntrospectionField()) return undefined;
  return { field: true, ...conditions, responseName: field.responseName(), typename: field.name === typenameFieldName, shape: shapeOf(field.definition.type as Type), selection: selectionSteps };
}

function shapeOf(type: Type): ValueShape {
  if (isNonNullType(type)) return { kind: Kind.NonNull, of: shapeOf(type.ofType) };
  if (isListType(type)) return { kind: Kind.List, of: shapeOf(type.ofType) };
  if (isCompositeType(type)) return { kind: Kind.Composite, type };
  return { kind: Kind.Leaf, type };
}

/** The element's `@skip`/`@include` arguments; undefined when one is neither a boolean nor a variable (stock would fail on it). */
function conditionsOf(selection: FieldSelection | FragmentSelection): Conditions | undefined {
  const conditions: Conditions = {};
  const schema = selection.element.schema();
  for (const [key, directive] of [
    ['skipIf', schema.skipDirective()],
    ['includeIf', schema.includeDirective()],
  ] as const) {
    const applied = selection.element.appliedDirectivesOf(directive)[0];
    if (!applied) continue;
    const value: unknown = applied.arguments().if;
    if (value instanceof Variable) conditions[key] = value.name;
    else if (typeof value === 'boolean') conditions[key] = value;
    else return undefined;
  }
  return conditions;
}

/** One shaping: the request's variables and the schema, and the walk itself. */
class Walk {
  constructor(
    private readonly schema: Schema,
    private readonly variables: Record<string, unknown>,
    private readonly typeNamed: (name: string) => NamedType | undefined,
  ) {}

  apply(input: Record<string, unknown>, steps: Step[], output: Record<string, unknown>, parentType: NamedType): void {
    for (const step of steps) {
      if ((step.skipIf !== undefined || step.includeIf !== undefined) && this.skipped(step)) continue;
      if (step.field) {
        const name = step.responseName;
        const outputValue = own.call(output, name) ? output[name] : undefined;
        const inputValue = own.call(input, name) ? (input[name] ?? null) : null;
        if (step.typename) {
          if (outputValue === undefined) output[name] = this.typename(input, name, inputValue, parentType);
          continue;
        }
        output[name] = this.update(outputValue, step.shape, inputValue, step.selection);
      } else {
        const typename = input[typenameFieldName];
        if (typename && typeof typename !== 'string') throw NOT_PLAIN;
        if (this.applies(step, typename as string | undefined, parentType)) this.apply(input, step.selection, output, step.typeCondition ?? parentType);
      }
    }
  }

  private skipped(step: Conditions): boolean {
    return (step.skipIf !== undefined && this.value(step.skipIf)) || (step.includeIf !== undefined && !this.value(step.includeIf));
  }

  private value(condition: Condition): boolean {
    if (typeof condition === 'boolean') return condition;
    const value = this.variables[condition];
    if (typeof value !== 'boolean') throw NOT_PLAIN;
    return value;
  }

  private typename(input: Record<string, unknown>, responseName: string, inputValue: unknown, parentType: NamedType): string {
    const named = inputValue === null && responseName !== typenameFieldName ? (input[typenameFieldName] ?? null) : inputValue;
    const type = typeof named === 'string' ? (this.typeNamed(named) ?? parentType) : parentType;
    if (!isObjectType(type)) throw NOT_PLAIN;
    return type.name;
  }

  private applies(step: FragmentStep, typename: string | undefined, parentType: NamedType): boolean {
    const condition = step.typeCondition;
    if (!condition) return true;
    if (typename) {
      let applies = step.byTypename.get(typename);
      if (applies === undefined) {
        const type = this.typeNamed(typename);
        if (!type) return false;
        applies = isSubtype(condition, type);
        step.byTypename.set(typename, applies);
      }
      return applies;
    }
    let applies = step.byParent.get(parentType);
    if (applies === undefined) {
      applies = isSubtype(condition, parentType);
      step.byParent.set(parentType, applies);
    }
    return applies;
  }

  private update(outputValue: unknown, shape: ValueShape, inputValue: unknown, selection: Step[] | undefined): unknown {
    if (outputValue === null || (outputValue !== undefined && !selection)) return outputValue;
    switch (shape.kind) {
      case Kind.NonNull: {
        const updated = this.update(outputValue, shape.of, inputValue, selection);
        if (updated === null) throw NOT_PLAIN;
        return updated;
      }
      case Kind.List: {
        if (inputValue === null) return null;
        if (!Array.isArray(inputValue)) throw NOT_PLAIN;
        if (outputValue !== undefined && (!Array.isArray(outputValue) || outputValue.length !== inputValue.length)) throw NOT_PLAIN;
        const previous = outputValue as unknown[] | undefined;
        const updated = new Array<unknown>(inputValue.length);
        for (let i = 0; i < inputValue.length; i++) {
          const element: unknown = inputValue[i];
          if (element === undefined) throw NOT_PLAIN;
          updated[i] = this.update(previous?.[i], shape.of, element, selection);
        }
        return updated;
      }
      case Kind.Composite: {
        if (inputValue === null) return null;
        if (typeof inputValue !== 'object' || Array.isArray(inputValue) || !selection) throw NOT_PLAIN;
        if (outputValue !== undefined && (typeof outputValue !== 'object' || Array.isArray(outputValue))) throw NOT_PLAIN;
        const input = inputValue as Record<string, unknown>;
        const typename = input[typenameFieldName];
        let type: NamedType = shape.type;
        if (typename !== undefined && typename !== '') {
          if (typeof typename !== 'string') throw NOT_PLAIN;
          const named = this.typeNamed(typename);
          if (!named || !isCompositeType(named)) throw NOT_PLAIN;
          type = named;
        }
        const output = (outputValue as Record<string, unknown> | undefined) ?? Object.create(null);
        this.apply(input, selection, output, type);
        return output;
      }
      case Kind.Leaf: {
        if (inputValue === null) return null;
        if (outputValue !== undefined || !isValidLeafValue(this.schema, inputValue, shape.type as never)) throw NOT_PLAIN;
        return inputValue;
      }
    }
  }
}
