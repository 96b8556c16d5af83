/**
 * The completion tokens an operation is charged at admission: for each root
 * `complete` or `completionStream` field, its `input.maxTokens` — from the
 * literal or the variables — or the inference subgraph's default when the
 * input gives none. The prompt is not counted here (it is not tokenized until
 * inference renders it); the real usage, prompt included, corrects the charge
 * afterwards where the gateway sees it (`token-charge-correction.ts`).
 */
import { getOperationAST, Kind, valueFromASTUntyped, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';

/** Inference's `maxTokens` when the input gives none (subgraphs/inference/server.ts, `defaultMaxTokens`). */
export const INFERENCE_DEFAULT_MAX_TOKENS = 256;
const COMPLETION_FIELDS: ReadonlySet<string> = new Set(['complete', 'completionStream']);

/** The operation's root completion fields, fragments at the root included. */
export function completionFields(document: DocumentNode, operationName?: string | null): FieldNode[] {
  const operation = getOperationAST(document, operationName ?? undefined);
  if (!operation) return [];
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const fields: FieldNode[] = [];
  const walk = (set: SelectionSetNode, seen: ReadonlySet<string>) => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        if (COMPLETION_FIELDS.has(selection.name.value)) fields.push(selection);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) walk(selection.selectionSet, seen);
      else {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(fragment.name.value)) walk(fragment.selectionSet, new Set([...seen, fragment.name.value]));
      }
    }
  };
  walk(operation.selectionSet, new Set());
  return fields;
}

/** `maxTokens` of one completion field, with the variables' values. */
export function maxTokensOf(field: FieldNode, variables: Record<string, unknown> | null | undefined): number {
  const input = field.arguments?.find((a) => a.name.value === 'input');
  const value = input ? (valueFromASTUntyped(input.value, variables ?? {}) as { maxTokens?: unknown } | null) : null;
  const maxTokens = value?.maxTokens;
  // Validation (or the subgraph) refuses anything but a positive integer: it is never charged as such.
  return typeof maxTokens === 'number' && Number.isSafeInteger(maxTokens) && maxTokens > 0 ? maxTokens : INFERENCE_DEFAULT_MAX_TOKENS;
}

/** The tokens an operation is charged at admission: 0 when it has no completion field. */
export function completionTokens(document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | null | undefined): number {
  return tokensOf(completionFields(document, operationName), variables);
}

/** The tokens charged for an operation's completion `fields` (found once per document by the caller), with its variables. */
export function tokensOf(fields: readonly FieldNode[], variables: Record<string, unknown> | null | undefined): number {
  return fields.reduce((sum, field) => sum + maxTokensOf(field, variables), 0);
}
