/**
 * Operation limits, checked before anything is planned or fetched (issue 7):
 * the document's size in bytes and in lexical tokens (before parsing, so an
 * oversized document costs a scan, not a parse), then the operation's depth,
 * aliases and root fields (after validation, fragments expanded). A refusal
 * is OPERATION_LIMIT naming the limit, its maximum and what the operation had
 * — as Apollo Router's `MAX_DEPTH_LIMIT` and friends, in one code.
 */
import { getOperationAST, GraphQLError, Kind, Lexer, parse, Source, TokenKind, type DocumentNode, type FragmentDefinitionNode, type SelectionSetNode } from 'graphql';
import type { Env } from '../../lib/config';
import { ErrorCode, httpStatusFor } from '../../lib/errors';
import { remember } from '../../lib/bounded-map';

export interface OperationLimits {
  /** Largest document, in bytes of UTF-8: room for a pretty-printed document at the token limit (GATEWAY_MAX_DOCUMENT_BYTES). @default 262144 */
  maxDocumentBytes: number;
  /** Most lexical tokens in a document, as Apollo Router's `parser_max_tokens` (GATEWAY_MAX_TOKENS). @default 15000 */
  maxTokens: number;
  /** Fields selected once fragments are expanded: bounds every later walk over the operation (GATEWAY_MAX_EXPANDED_FIELDS). @default 20000 */
  maxExpandedFields: number;
  /** Deepest field nesting (GATEWAY_MAX_DEPTH); room for introspection's 15 and for trees walked by hand. @default 64 */
  maxDepth: number;
  /** Most aliases (GATEWAY_MAX_ALIASES); room for batching by alias. @default 1000 */
  maxAliases: number;
  /** Most root fields, fragments expanded (GATEWAY_MAX_ROOT_FIELDS); room for batching by alias. @default 1000 */
  maxRootFields: number;
}

export interface OperationShape {
  /** Deepest field nesting: `{ a { b } }` is 2. */
  depth: number;
  aliases: number;
  rootFields: number;
}

/**
 * The limits from the environment. The defaults refuse no query a client
 * writes by hand or generates (the foreign-graph test holds them to what
 * stock @apollo/gateway answers); they bound what each request can make the
 * gateway parse and walk (README, "Defaults").
 */
export function operationLimitsFromEnv(env: Env): OperationLimits {
  return {
    maxDocumentBytes: env.int('GATEWAY_MAX_DOCUMENT_BYTES', 256 * 1024, { min: 256 }),
    maxTokens: env.int('GATEWAY_MAX_TOKENS', 15_000, { min: 100 }),
    maxExpandedFields: env.int('GATEWAY_MAX_EXPANDED_FIELDS', 20_000, { min: 10 }),
    maxDepth: env.int('GATEWAY_MAX_DEPTH', 64, { min: 1 }),
    maxAliases: env.int('GATEWAY_MAX_ALIASES', 1_000, { min: 0 }),
    maxRootFields: env.int('GATEWAY_MAX_ROOT_FIELDS', 1_000, { min: 1 }),
  };
}

type LimitName = 'documentBytes' | 'tokens' | 'expandedFields' | 'depth' | 'aliases' | 'rootFields';

function limitError(limit: LimitName, what: string, max: number, got: number): GraphQLError {
  return new GraphQLError(`the operation ${what}: expected at most ${max}, got ${got}`, {
    extensions: { code: ErrorCode.OperationLimit, limit, max, got, http: { status: httpStatusFor(ErrorCode.OperationLimit) } },
  });
}

/** The document's size and lexical tokens against the limits; stops counting once past the maximum. */
export function checkSource(query: string, limits: OperationLimits): GraphQLError | undefined {
  const bytes = Buffer.byteLength(query);
  if (bytes > limits.maxDocumentBytes) return limitError('documentBytes', 'document is too large', limits.maxDocumentBytes, bytes);
  const lexer = new Lexer(new Source(query));
  let tokens = 0;
  try {
    while (lexer.advance().kind !== TokenKind.EOF) {
      if (++tokens > limits.maxTokens) return limitError('tokens', `document has more than ${limits.maxTokens} tokens`, limits.maxTokens, tokens);
    }
  } catch {
    // A lexical error is the parser's to report, with its position.
  }
  return undefined;
}

/**
 * How many fields the document selects once every fragment is expanded where
 * it is spread, counted in linear time (each fragment's count is worked out
 * once): fragments spreading others twice over can make a document of a few
 * hundred bytes expand to billions of fields, and every later walk over the
 * operation (limits, cost, authorization, planning) would pay for that.
 * Every operation of the document counts, so a cycle left for validation to
 * report counts as nothing.
 */
export function expandedFieldCount(document: DocumentNode): number {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const known = new Map<string, number>();
  const counting = new Set<string>();
  const fragmentCount = (name: string): number => {
    const cached = known.get(name);
    if (cached !== undefined) return cached;
    const fragment = fragments.get(name);
    if (!fragment || counting.has(name)) return 0;
    counting.add(name);
    const count = setCount(fragment.selectionSet);
    counting.delete(name);
    known.set(name, count);
    return count;
  };
  const setCount = (set: SelectionSetNode): number => {
    let count = 0;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) count += 1 + (selection.selectionSet ? setCount(selection.selectionSet) : 0);
      else if (selection.kind === Kind.INLINE_FRAGMENT) count += setCount(selection.selectionSet);
      else count += fragmentCount(selection.name.value);
    }
    return count;
  };
  let total = 0;
  for (const definition of document.definitions) if (definition.kind === Kind.OPERATION_DEFINITION) total += setCount(definition.selectionSet);
  return total;
}

function expansionError(fields: number, limits: OperationLimits): GraphQLError {
  return limitError('expandedFields', 'selects too many fields once its fragments are expanded', limits.maxExpandedFields, fields);
}

/** Depth, aliases and root fields of the named (or only) operation, with fragments expanded where they are spread. */
export function measureOperation(document: DocumentNode, operationName?: string | null): OperationShape {
  const operation = getOperationAST(document, operationName ?? undefined);
  if (!operation) return { depth: 0, aliases: 0, rootFields: 0 };
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  let aliases = 0;
  // Validation has refused fragment cycles; `seen` keeps a spread chain from being walked twice at one level.
  const walk = (set: SelectionSetNode, depth: number, seen: ReadonlySet<string>): number => {
    let deepest = depth;
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        if (selection.alias) aliases += 1;
        deepest = Math.max(deepest, selection.selectionSet ? walk(selection.selectionSet, depth + 1, seen) : depth + 1);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        deepest = Math.max(deepest, walk(selection.selectionSet, depth, seen));
      } else {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(fragment.name.value)) deepest = Math.max(deepest, walk(fragment.selectionSet, depth, new Set([...seen, fragment.name.value])));
      }
    }
    return deepest;
  };
  const rootFields = countRootFields(operation.selectionSet, fragments);
  const depth = walk(operation.selectionSet, 0, new Set());
  return { depth, aliases, rootFields };
}

function countRootFields(set: SelectionSetNode, fragments: ReadonlyMap<string, FragmentDefinitionNode>, seen: ReadonlySet<string> = new Set()): number {
  let count = 0;
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) count += 1;
    else if (selection.kind === Kind.INLINE_FRAGMENT) count += countRootFields(selection.selectionSet, fragments, seen);
    else {
      const fragment = fragments.get(selection.name.value);
      if (fragment && !seen.has(fragment.name.value)) count += countRootFields(fragment.selectionSet, fragments, new Set([...seen, fragment.name.value]));
    }
  }
  return count;
}

/** Every limit the operation passes beyond, in a fixed order. */
export function checkShape(shape: OperationShape, limits: OperationLimits): GraphQLError[] {
  const errors: GraphQLError[] = [];
  if (shape.depth > limits.maxDepth) errors.push(limitError('depth', 'is nested too deeply', limits.maxDepth, shape.depth));
  if (shape.aliases > limits.maxAliases) errors.push(limitError('aliases', 'has too many aliases', limits.maxAliases, shape.aliases));
  if (shape.rootFields > limits.maxRootFields) errors.push(limitError('rootFields', 'has too many root fields', limits.maxRootFields, shape.rootFields));
  return errors;
}

/** The expansion check on a document's text, before anything else parses it; a syntax error is the parser's to report. */
export function checkSourceExpansion(query: string, limits: OperationLimits): GraphQLError | undefined {
  let fields = expandedFields.get(query);
  if (fields === undefined) {
    let document: DocumentNode;
    try {
      document = parse(query, { noLocation: true });
    } catch {
      return undefined;
    }
    fields = expandedFieldCount(document);
    if (query.length <= MAX_REMEMBERED_CHARS) remember(expandedFields, query, fields, MAX_REMEMBERED_DOCUMENTS);
  }
  return fields > limits.maxExpandedFields ? expansionError(fields, limits) : undefined;
}

/**
 * Expanded-field counts by document text: clients send the same few documents
 * again and again, and this check runs on every request before Apollo Server
 * or the subscription service (which keep their own parsed documents) parse
 * it, so each text is parsed here once.
 */
const expandedFields = new Map<string, number>();
export const MAX_REMEMBERED_DOCUMENTS = 1_000;
/** Longest text remembered: keys are whole documents, so 1,000 of the largest allowed would hold 256 MiB; larger ones are parsed again. */
export const MAX_REMEMBERED_CHARS = 16 * 1024;
