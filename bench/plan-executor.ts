/**
 * Issue 19, item 2: what one execution of the gateway-throughput benchmark's
 * query plan costs in the gateway's process — stock @apollo/gateway's
 * `executeQueryPlan` against the plan executor compiled per plan
 * (gateway/plan-executor) — with the subgraphs taken out: the subgraph
 * answers are recorded once from the real stack (one `benchStack`, the
 * benchmark's signed-in user with an API key and two documents), then each
 * executor runs the plan against data sources that replay them (each replay
 * parses the recorded JSON, as a real fetch would). Both gateways are the
 * same `ApolloGateway` over the stack's supergraph, their executors called
 * directly (no Apollo Server, no HTTP), one execution at a time, alternating
 * rounds; the first answer of every round is checked byte for byte against stock's.
 *
 *   npx tsx bench/plan-executor.ts [rounds, default 5] [executions per round, default 2000]
 */
import { createHash } from 'node:crypto';
import * as os from 'node:os';
import path from 'node:path';
import { type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { ApolloGateway, type GraphQLDataSource, type GraphQLDataSourceProcessOptions, RemoteGraphQLDataSource } from '@apollo/gateway';
import type { GatewayExecutor, GatewayGraphQLRequestContext, GatewayInterface } from '@apollo/server-gateway-interface';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type OperationDefinitionNode, parse } from 'graphql';
import { supergraphForGateway } from '../gateway/auth/authorization/gateway-supergraph';
import { compiledPlanGateway } from '../gateway/plan-executor/compiled-gateway';
import { composeSupergraph, readSupergraphConfig } from '../gateway/supergraph';
import { IDENTITY_HEADER, identitySignerFromEnv } from '../lib/identity';
import { FORWARDS_IDENTITY_TO } from '../lib/service-calls';
import { SESSION_SCOPES } from '../subgraphs/auth/scopes';
import { bearer, gql } from '../test/support/graphql';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';
import { NESTED_QUERY } from './support/nested-query';

const ROUNDS = Number(process.argv[2] ?? 5);
const PER_ROUND = Number(process.argv[3] ?? 2000);
const WARMUP = 500;

/** A subgraph fetch's identity: the subgraph, the operation and its variables. */
const fetchKey = (service: string, options: GraphQLDataSourceProcessOptions) => `${service}\n${options.request.query}\n${JSON.stringify(options.request.variables)}`;

/** Answers every fetch from the recording: the response's JSON text, parsed anew each time (the executor merges into what it gets). */
class Replay implements GraphQLDataSource {
  constructor(
    private readonly service: string,
    private readonly recorded: Map<string, string>,
  ) {}
  async process(options: GraphQLDataSourceProcessOptions) {
    const text = this.recorded.get(fetchKey(this.service, options));
    if (text === undefined) throw new Error(`no recorded answer of ${this.service} for ${options.request.query}`);
    return JSON.parse(text);
  }
}

/** Runs the query once through a gateway over the real stack and keeps each subgraph's answer. */
async function record(supergraphSdl: string, identity: string): Promise<Map<string, string>> {
  const recorded = new Map<string, string>();
  class Recording extends RemoteGraphQLDataSource {
    override willSendRequest({ request }: GraphQLDataSourceProcessOptions): void {
      request.http?.headers.set(IDENTITY_HEADER, identity);
    }
  }
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name, url }) => {
      const source = new Recording({ url });
      return {
        process: async (options) => {
          const response = await source.process(options);
          recorded.set(fetchKey(name, options), JSON.stringify({ data: response.data, errors: response.errors }));
          return response;
        },
      };
    },
  });
  const { executor } = await gateway.load();
  const result = await executor!(requestContext());
  if (result.errors || !result.data) throw new Error(`recording the subgraph answers failed: ${JSON.stringify(result.errors)}`);
  await gateway.stop();
  return recorded;
}

const document = parse(NESTED_QUERY);
const queryHash = createHash('sha256').update(NESTED_QUERY).digest('hex');

/** What Apollo Server hands a gateway's executor for the query, minus what neither executor reads. */
function requestContext(): GatewayGraphQLRequestContext {
  return {
    request: { query: NESTED_QUERY, operationName: 'Nested', variables: {} },
    document,
    queryHash,
    source: NESTED_QUERY,
    operationName: 'Nested',
    operation: document.definitions[0] as OperationDefinitionNode,
    metrics: {},
    context: {},
    logger: console,
    overallCachePolicy: {},
  } as unknown as GatewayGraphQLRequestContext;
}

interface Measured {
  label: string;
  executor: GatewayExecutor;
  cpuMicros: number[];
  gcMicros: number[];
  allocatedBytes: number[];
}

/** Garbage collections observed (count and time), reset by whoever reads them. */
interface Collections {
  count: number;
  micros: number;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

/** One round: CPU and collector time per execution, starting from a collected heap so no round pays for another's garbage. */
async function round(target: Measured, count: number, expected: string, gc: Collections, collect: () => void): Promise<void> {
  collect();
  await settle();
  gc.micros = 0;
  const cpu = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const result = await target.executor(requestContext());
    if (i === 0 && JSON.stringify(result) !== expected) throw new Error(`${target.label}: the answer differs from stock's: ${JSON.stringify(result).slice(0, 500)}`);
  }
  const used = process.cpuUsage(cpu);
  // The observer hears of collections asynchronously.
  await settle();
  target.cpuMicros.push((used.user + used.system) / count);
  target.gcMicros.push(gc.micros / count);
}

/**
 * Bytes allocated per execution: the heap's growth over a few executions that ran between two forced collections with none
 * of their own (all they allocated is still on the heap); samples during which the collector ran are dropped.
 */
async function allocations(target: Measured, gc: Collections, collect: () => void): Promise<void> {
  const batch = 2;
  for (let sample = 0; sample < 60; sample++) {
    collect();
    await settle();
    gc.count = 0;
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < batch; i++) await target.executor(requestContext());
    const after = process.memoryUsage().heapUsed;
    await settle();
    if (gc.count === 0) target.allocatedBytes.push((after - before) / batch);
  }
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const { stack, token } = await benchStack();
  let recorded: Map<string, string>;
  let supergraphSdl: string;
  try {
    const auth = bearer(token);
    const me = await gql(stack.gatewayUrl, '{ me { id } }', {}, auth);
    const setUp = await Promise.all([
      gql(stack.gatewayUrl, 'mutation { createApiKey(name: "bench key", scopes: [BILLING_READ]) { apiKey { id } } }', {}, auth),
      ...['Gateway benchmarks', 'Federation notes'].map((t) =>
        gql(stack.gatewayUrl, 'mutation($t: String!) { addDocument(title: $t, content: "A plan executor benchmark document.") { id } }', { t }, auth),
      ),
    ]);
    for (const res of [me, ...setUp]) if (res.errors) throw new Error(`setting up the bench user failed: ${JSON.stringify(res.errors)}`);
    // The supergraph with the stack's routing URLs and a signed identity, as bench/stock-gateway.ts builds them.
    Object.assign(process.env, stack.env);
    supergraphSdl = supergraphForGateway(composeSupergraph(readSupergraphConfig(path.resolve(__dirname, '..', 'supergraph.yaml'))));
    const identity = identitySignerFromEnv(3600).sign({ sub: me.data?.me.id as string, scopes: [...SESSION_SCOPES] }, Object.keys(FORWARDS_IDENTITY_TO));
    recorded = await record(supergraphSdl, identity);
  } finally {
    await stack.stop();
  }

  const replaying = () => new ApolloGateway({ supergraphSdl, buildService: ({ name }) => new Replay(name, recorded) });
  const load = async (label: string, gateway: GatewayInterface): Promise<Measured> => {
    const { executor } = await gateway.load({ apollo: {} } as Parameters<GatewayInterface['load']>[0]);
    return { label, executor: executor!, cpuMicros: [], gcMicros: [], allocatedBytes: [] };
  };
  const stockGateway = replaying();
  const compiledGateway = replaying();
  const targets = [await load("stock @apollo/gateway's executeQueryPlan", stockGateway), await load('compiled per plan (gateway/plan-executor)', compiledPlanGateway(compiledGateway))];
  const expected = JSON.stringify(await targets[0].executor(requestContext()));

  const gc: Collections = { count: 0, micros: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries() as PerformanceEntry[]) {
      gc.count++;
      gc.micros += entry.duration * 1000;
    }
  });
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  observer.observe({ entryTypes: ['gc'] });
  try {
    for (const target of targets) await round(target, WARMUP, expected, gc, collect);
    for (const target of targets) {
      target.cpuMicros = [];
      target.gcMicros = [];
      target.allocatedBytes = [];
    }
    for (let r = 0; r < ROUNDS; r++) for (const target of targets) await round(target, PER_ROUND, expected, gc, collect);
    for (const target of targets) await allocations(target, gc, collect);
  } finally {
    observer.disconnect();
    await Promise.all([stockGateway.stop(), compiledGateway.stop()]);
  }

  const median = (values: number[]) => percentile(values, 50);
  const [stock] = targets;
  const rows = targets.map(
    (t) =>
      `| ${t.label} | ${median(t.cpuMicros).toFixed(0)} | ${median(t.gcMicros).toFixed(0)} | ${t.allocatedBytes.length ? (median(t.allocatedBytes) / 1024).toFixed(0) : 'n/a'} | ${(median(stock.cpuMicros) / median(t.cpuMicros)).toFixed(2)}× |`,
  );
  const fetches = recorded.size;
  const responseBytes = expected.length;
  const body = [
    `The gateway-throughput benchmark's query (\`query Nested\`, ${fetches} subgraph fetches in its plan, a ${(responseBytes / 1024).toFixed(1)} KB answer), its subgraph answers recorded from the real stack and replayed (each replay parses the recorded JSON); each gateway's executor called directly, one execution at a time, ${ROUNDS} alternating rounds of ${PER_ROUND} executions after ${WARMUP} of warm-up; medians of the rounds. The first answer of every round of each executor is checked byte for byte against stock's (\`npx tsx bench/plan-executor.ts\`).`,
    '',
    '| executor | CPU µs per execution | of which GC µs | KB allocated per execution³ | vs stock |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    "Each execution includes what both executors share: building the operation context, checking the variables, the plan cache lookup (the plan is cached after the warm-up), and parsing the replayed subgraph answers. What the compiled executor leaves out is stock's per-request work: turning the document back into a federation `Operation`, interpreting the plan and each fetch's `requires` selection, and shaping the answer by walking the operation with schema lookups.",
    '',
    "³ The heap's growth over 2 executions run between two forced collections with none of their own, per execution (median of the samples without a collection).",
    '',
    loadNote(loadBefore),
  ].join('\n');
  recordResult('plan-executor', 'Plan executor: stock executeQueryPlan vs compiled per plan', body);
  process.stdout.write(`${body}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
