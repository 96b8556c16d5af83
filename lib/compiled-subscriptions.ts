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
 * of the same document.
 */
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { createSourceEventStream, print, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { remember } from './bounded-map';

export type Subscribe = (args: ExecutionArgs) => Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult>;

export function compiledSubscribe(schema: GraphQLSchema, maxCached = 500): Subscribe {
  const compiled = new Map<string, CompiledQuery>();
  const compile = (args: ExecutionArgs): CompiledQuery | ExecutionResult => {
    const key = `${args.operationName ?? ''}\n${print(args.document)}`;
    const known = compiled.get(key);
    if (known) return known;
    const result = compileQuery(schema, args.document, args.operationName ?? undefined);
    if (!isCompiledQuery(result)) return result as ExecutionResult;
    remember(compiled, key, result, maxCached);
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
