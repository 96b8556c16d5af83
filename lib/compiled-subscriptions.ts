/**
 * Subscription execution for subgraphs, with per-event execution compiled by
 * graphql-jit. graphql-js runs a subscription's selection set again for every
 * event through its generic executor, coercing the operation's variables each
 * time; with token-by-token streams that was most of the inference
 * subgraph's CPU per event when profiled. Here graphql-js still starts the
 * subscription (`createSourceEventStream`: the root field's `subscribe`
 * resolver with its real arguments — graphql-jit would hand it the
 * operation's variables instead), and every event is then shaped by the
 * operation compiled once with graphql-jit and reused for every subscription
 * of the same document. graphql-jit coerces the variables again for each
 * event (its compiled query offers no entry that takes them coerced), but
 * that was measured as noise: a completion chunk shaped in ~840 ns with a
 * CompletionInput variable, ~830 ns with the same input written as literals.
 */
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { createSourceEventStream, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';

export type Subscribe = (args: ExecutionArgs) => Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult>;

export function compiledSubscribe(schema: GraphQLSchema): Subscribe {
  // By document object: the endpoint hands every subscribe of a known text the same parsed document
  // (graphql-ws-endpoint.ts), so no subscribe prints its document to find its compiled form; an
  // entry goes with its document.
  const compiled = new WeakMap<DocumentNode, Map<string, CompiledQuery>>();
  const compile = (args: ExecutionArgs): CompiledQuery | ExecutionResult => {
    const name = args.operationName ?? '';
    let byName = compiled.get(args.document);
    const known = byName?.get(name);
    if (known) return known;
    const result = compileQuery(schema, args.document, args.operationName ?? undefined);
    if (!isCompiledQuery(result)) return result as ExecutionResult;
    if (!byName) {
      byName = new Map();
      compiled.set(args.document, byName);
    }
    byName.set(name, result);
    return result;
  };
  return async (args) => {
    const query = compile(args);
    if (!isCompiledQuery(query)) return query;
    const source = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in source)) return source as ExecutionResult;
    const events = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    const shape = (payload: unknown) => query.query(payload, args.contextValue, args.variableValues as Record<string, unknown>) as ExecutionResult | Promise<ExecutionResult>;
    // A plain iterator rather than an async generator: return() must reach the source at once,
    // even while next() waits for an event, so an unsubscribe cancels the stream without delay.
    const iterator: AsyncIterableIterator<ExecutionResult> = {
      async next() {
        const step = await events.next();
        return step.done ? { done: true, value: undefined } : { done: false, value: await shape(step.value) };
      },
      async return() {
        await events.return?.();
        return { done: true, value: undefined };
      },
      async throw(error: unknown) {
        await events.return?.();
        throw error;
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  };
}
