import { getOperationAST, valueFromASTUntyped, type DocumentNode } from 'graphql';

/**
 * The variables an operation runs with: the request's, plus the declared
 * default of each variable the request leaves out. What counts an
 * operation's tokens or cost must read these, not the raw request, or
 * `query($n: Int = 1000)` sent without `n` would be counted as if unset.
 */
export function variablesWithDefaults(document: DocumentNode, operationName: string | null | undefined, variables: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const given = variables ?? {};
  const operation = getOperationAST(document, operationName ?? undefined);
  let result: Record<string, unknown> | undefined;
  for (const definition of operation?.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    if (definition.defaultValue && given[name] === undefined) {
      result ??= { ...given };
      result[name] = valueFromASTUntyped(definition.defaultValue);
    }
  }
  return result ?? given;
}
