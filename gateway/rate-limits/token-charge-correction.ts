/**
 * Corrects an operation's token charge with what its completions really used.
 * Every `complete` reaches the inference subgraph through a gateway fetch, so
 * the gateway asks for the usage itself: the fetch gets one more field,
 * `sluiceRateLimitUsage: usage { totalTokens }`, under each root `complete`,
 * read and removed from the subgraph's answer before the query plan sees it.
 * This works whether or not the client selected `usage`, and the client's
 * result is unchanged. The charge is then corrected once, when the response
 * is sent: the real tokens (prompt and completion) of every completion that
 * ran; one that failed, or was never fetched (refused, filtered), counts 0;
 * one whose usage could not be read keeps its `maxTokens`.
 *
 * Subscriptions (`completionStream`) run over graphql-ws
 * (`gateway/subscriptions/`): they are planned with the same field added, see
 * `withStreamUsage`.
 */
import type { GraphQLDataSource, GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { Kind, parse, print, type DocumentNode, type FieldNode, type OperationDefinitionNode } from 'graphql';
import type { TokenCharge } from './limiter';
import { completionFields, maxTokensOf } from './operation-tokens';
import { remember } from '../../lib/bounded-map';

const USAGE_ALIAS = 'sluiceRateLimitUsage';
const MAX_CACHED_QUERIES = 500;

interface Pending {
  charge: TokenCharge;
  /** Real tokens of the completions seen so far. */
  real: number;
}

interface Rewritten {
  query: string;
  document: DocumentNode;
}

export class TokenChargeCorrection {
  private readonly pending = new WeakMap<object, Pending>();
  /** Subgraph fetch texts (a few per operation shape, from the query planner) → their metered form, or null when they have no completion. */
  private readonly rewrites = new Map<string, Rewritten | null>();

  /** Starts metering an operation's completions; `context` is the operation's own (one per HTTP request or WebSocket operation). */
  expect(context: object, charge: TokenCharge): void {
    this.pending.set(context, { charge, real: 0 });
  }

  /** Corrects the operation's charge with the usage seen, once. */
  async settle(context: object): Promise<void> {
    const pending = this.pending.get(context);
    if (!pending) return;
    this.pending.delete(context);
    await pending.charge.correct(pending.real);
  }

  /** The data source itself, its `process` metering the completions of operations that were charged tokens. */
  meter<TContext extends object, T extends GraphQLDataSource<TContext>>(source: T): T {
    const process = source.process.bind(source);
    source.process = async (options: GraphQLDataSourceProcessOptions<TContext>) => {
      const pending = this.pending.get(options.context);
      const query = options.request.query;
      const rewritten = pending && query ? this.rewrite(query) : null;
      if (!pending || !rewritten) return process(options);
      const response = await process({ ...options, request: { ...options.request, query: rewritten.query } });
      const data = response.data as Record<string, Record<string, unknown> | null> | null | undefined;
      for (const field of completionFields(rewritten.document)) {
        const result = data?.[field.alias?.value ?? field.name.value];
        if (!result) continue; // failed: nothing to count
        const usage = result[USAGE_ALIAS] as { totalTokens?: unknown } | null | undefined;
        delete result[USAGE_ALIAS];
        pending.real += typeof usage?.totalTokens === 'number' ? usage.totalTokens : maxTokensOf(field, options.request.variables);
      }
      return response;
    };
    return source;
  }

  private rewrite(query: string): Rewritten | null {
    const known = this.rewrites.get(query);
    if (known !== undefined) return known;
    let rewritten: Rewritten | null = null;
    if (/\bcomplete\b/.test(query)) {
      const document = parse(query);
      const operation = document.definitions.find((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
      if (operation?.operation === 'mutation' && operation.selectionSet.selections.some(isComplete)) {
        const selections = operation.selectionSet.selections.map((s) =>
          isComplete(s) && s.selectionSet ? { ...s, selectionSet: { ...s.selectionSet, selections: [...s.selectionSet.selections, USAGE_FIELD] } } : s,
        );
        const metered: DocumentNode = { ...document, definitions: document.definitions.map((d) => (d === operation ? { ...operation, selectionSet: { ...operation.selectionSet, selections } } : d)) };
        rewritten = { query: print(metered), document: metered };
      }
    }
    remember(this.rewrites, query, rewritten, MAX_CACHED_QUERIES);
    return rewritten;
  }
}

function isComplete(selection: OperationDefinitionNode['selectionSet']['selections'][number]): selection is FieldNode {
  return selection.kind === Kind.FIELD && selection.name.value === 'complete';
}

const USAGE_FIELD: FieldNode = {
  kind: Kind.FIELD,
  alias: { kind: Kind.NAME, value: USAGE_ALIAS },
  name: { kind: Kind.NAME, value: 'usage' },
  selectionSet: { kind: Kind.SELECTION_SET, selections: [{ kind: Kind.FIELD, name: { kind: Kind.NAME, value: 'totalTokens' } }] },
};

/**
 * The document a metered subscription is planned with: every root
 * `completionStream` also selects `sluiceRateLimitUsage: usage { totalTokens }`,
 * so the stream's last event carries its real usage whether or not the client
 * asked for it (`takeStreamUsage` reads it and removes it before the client
 * sees the event).
 */
export function withStreamUsage(document: DocumentNode): DocumentNode {
  let changed = false;
  const definitions = document.definitions.map((definition) => {
    if (definition.kind !== Kind.OPERATION_DEFINITION || definition.operation !== 'subscription') return definition;
    const selections = definition.selectionSet.selections.map((s) => {
      if (s.kind !== Kind.FIELD || s.name.value !== 'completionStream' || !s.selectionSet) return s;
      changed = true;
      return { ...s, selectionSet: { ...s.selectionSet, selections: [...s.selectionSet.selections, USAGE_FIELD] } };
    });
    return { ...definition, selectionSet: { ...definition.selectionSet, selections } };
  });
  return changed ? { ...document, definitions } : document;
}

/** The real tokens an event of a stream carries (its last one does), removing the field the gateway added. */
export function takeStreamUsage(event: { data?: Record<string, unknown> | null }, responseKey: string): number | undefined {
  const chunk = event.data?.[responseKey] as Record<string, unknown> | null | undefined;
  if (!chunk || !(USAGE_ALIAS in chunk)) return undefined;
  const usage = chunk[USAGE_ALIAS] as { totalTokens?: unknown } | null;
  delete chunk[USAGE_ALIAS];
  return typeof usage?.totalTokens === 'number' ? usage.totalTokens : undefined;
}
