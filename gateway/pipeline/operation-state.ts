import type { DocumentNode, GraphQLSchema, OperationDefinitionNode } from 'graphql';
import type { GatewayContext } from '../auth/context';

/** Documents a feature narrowed (authorization's filter): their results are completed per caller, in place, before they are sent. */
const narrowedDocuments = new WeakSet<DocumentNode>();

/** Whether `document` is one a feature put in place of the request's own (see `OperationState.replaceDocument`). */
export function wasNarrowed(document: DocumentNode): boolean {
  return narrowedDocuments.has(document);
}

/** A typed place in an operation's state, one per feature that keeps something for the rest of the operation. */
export class StateKey<T> {
  private static count = 0;
  declare private readonly type: T;
  /** Its slot: keys are made once per feature, at start, so the slots stay few. */
  readonly index = StateKey.count++;
  constructor(readonly name: string) {}
}

/**
 * One operation as every feature hook sees it, on either path. Built once per
 * operation by the adapter, filled in once the operation is resolved.
 */
export class OperationState {
  /** When the operation started (`performance.now()`), for its duration. */
  readonly startedAt = performance.now();
  /** The document that runs: validated, and replaced by a feature that narrows it (authorization). */
  document!: DocumentNode;
  /** The operation of `document` that runs; undefined when the request names none that it has (Apollo Server then refuses it, after the checks). */
  operation: OperationDefinitionNode | undefined;
  operationName: string | null = null;
  /** The variables as the request sent them (`variablesWithDefaults` adds the declared defaults). */
  variables: Record<string, unknown> | undefined;
  /** The API schema the document was validated against. */
  schema!: GraphQLSchema;
  /** Apollo Server's hash of the document, which its query plan and the response cache are keyed by; changes with the document. */
  queryHash: string | undefined;
  private slots: unknown[] | undefined;

  constructor(
    readonly context: GatewayContext,
    /** True on the subscription path (the gateway runs it), false for what Apollo Server runs. */
    readonly subscription: boolean,
  ) {}

  /** Runs `document` instead from now on (and plans it under `queryHash`, which must differ when callers alike must not share the plan). */
  replaceDocument(document: DocumentNode, queryHash: string | undefined): void {
    narrowedDocuments.add(document);
    this.document = document;
    this.queryHash = queryHash;
  }

  get<T>(key: StateKey<T>): T | undefined {
    return this.slots?.[key.index] as T | undefined;
  }

  set<T>(key: StateKey<T>, value: T): void {
    this.slots ??= [];
    this.slots[key.index] = value;
  }
}
