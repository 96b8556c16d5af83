/**
 * Plans subscriptions over the supergraph. `@apollo/gateway` can load a
 * supergraph with a Subscription type but refuses to execute one, so the
 * gateway plans them itself with the same query planner: the plan's
 * `primary` fetch is the subscription sent to the subgraph that owns the root
 * field, and its `rest` resolves, for each event, the fields other subgraphs
 * own (DESIGN §7).
 */
import { buildOperationContext } from '@apollo/gateway';
import type { OperationContext } from '@apollo/gateway/dist/operationContext';
import { operationFromDocument, Supergraph, type Schema } from '@apollo/federation-internals';
import { QueryPlanner, type FetchNode, type PlanNode, type QueryPlan } from '@apollo/query-planner';
import type { DocumentNode, GraphQLSchema } from 'graphql';
import { remember } from '../../lib/bounded-map';

export interface SubscriptionPlan {
  operationContext: OperationContext;
  /** The subscription sent to the subgraph owning the root field. */
  primary: FetchNode;
  /** Entity fetches to run against each event, when other subgraphs own selected fields. */
  rest?: PlanNode;
}

export interface SubgraphEndpoint {
  name: string;
  url: string;
}

export class SubscriptionPlanner {
  /** The API schema (what clients see), for validation. */
  readonly schema: GraphQLSchema;
  /** Federation's view of the same schema, for executing plans. */
  readonly apiSchema: Schema;
  readonly supergraphSchema: GraphQLSchema;
  readonly subgraphs: SubgraphEndpoint[];
  private readonly planner: QueryPlanner;
  private readonly cache = new Map<string, SubscriptionPlan>();

  constructor(
    supergraphSdl: string,
    private readonly maxCachedPlans = 500,
  ) {
    const supergraph = Supergraph.build(supergraphSdl);
    this.apiSchema = supergraph.apiSchema();
    this.schema = this.apiSchema.toGraphQLJSSchema();
    this.supergraphSchema = supergraph.schema.toGraphQLJSSchema();
    this.subgraphs = supergraph
      .subgraphs()
      .values()
      .map((s) => ({ name: s.name, url: s.url }));
    this.planner = new QueryPlanner(supergraph);
  }

  /**
   * Plans a validated subscription document. Plans are cached by operation
   * name and `queryHash`, the pipeline's key for "plans the same" (a feature
   * that narrows the document per caller gives it a hash of its own,
   * operation-state.ts): features hand over a rewritten document object on
   * every subscribe, and printing it to find its plan was a subscribe's
   * largest planning cost.
   */
  plan(document: DocumentNode, operationName: string | null | undefined, queryHash: string): SubscriptionPlan {
    const key = `${operationName ?? ''}\n${queryHash}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const operationContext = buildOperationContext({ schema: this.schema, operationDocument: document, operationName: operationName ?? undefined });
    const operation = operationFromDocument(this.apiSchema, document, { operationName: operationName ?? undefined });
    const queryPlan: QueryPlan = this.planner.buildQueryPlan(operation);
    const node = queryPlan.node;
    if (node?.kind !== 'Subscription') throw new Error(`expected a subscription plan, got ${node?.kind ?? 'an empty plan'}`);
    const plan: SubscriptionPlan = { operationContext, primary: node.primary, rest: node.rest };
    remember(this.cache, key, plan, this.maxCachedPlans);
    return plan;
  }
}
