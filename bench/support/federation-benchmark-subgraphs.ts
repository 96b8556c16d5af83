/**
 * The graph of the public GraphQL gateways benchmark
 * (graphql-hive/graphql-gateways-benchmark), reproduced in shape with our own
 * deterministic data, for bench/gateway-throughput.ts's `federation`
 * workload: four subgraphs (accounts, inventory, products, reviews), a
 * `Product` entity in three of them with `@requires(fields: "price weight")`,
 * `Review.author` with `@provides(fields: "username")`, and one deep query
 * (users → reviews → product → reviews → author → reviews → product, and the
 * same from topProducts) whose answer is about 87 KB. It declares no cost,
 * list size or auth directive: another team's graph, served with
 * `--supergraph`, whose subgraphs expect no identity.
 *
 * Each subgraph is a lean HTTP server in a process of its own, so that its
 * CPU is counted apart from the gateway's and the load generator's. The
 * public benchmark's subgraphs are Rust servers that cost next to nothing;
 * ours must not be the bottleneck either, so, the data being static, a
 * subgraph answers a request body it has answered before with the same bytes
 * (`RESPONSES`), and executes (`@apollo/subgraph`'s schema, each distinct
 * query parsed and validated once) only bodies it has not seen. Run as a script with
 * BENCH_SUBGRAPH=<name> and BENCH_SUBGRAPH_PORT it serves that subgraph;
 * imported, `startBenchmarkSubgraphs` spawns the four and composes them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { composeServices } from '@apollo/composition';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import { type DocumentNode, execute, type GraphQLError, type GraphQLSchema, parse, validate } from 'graphql';
import { freePort } from '../../scripts/free-port';
import { byId as find, FEDERATION } from '../../test/support/federation-fixture';
import { spawnGateway, type StockGateway } from '../stock-gateway';

const ROOT = path.resolve(__dirname, '../..');

interface User {
  id: string;
  name: string;
  username: string;
  birthday: number;
}
interface Product {
  upc: string;
  name: string;
  price: number;
  weight: number;
}
interface Review {
  id: string;
  body: string;
  authorId: string;
  upc: string;
}

const WORDS = 'lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua'.split(' ');
/** Deterministic prose of `words` words, different for each `seed`. */
const prose = (seed: number, words: number) => Array.from({ length: words }, (_, i) => WORDS[(seed * 7 + i * 3 + ((i * seed) % 5)) % WORDS.length]).join(' ');

const USERS: User[] = Array.from({ length: 4 }, (_, i) => ({ id: String(i + 1), name: `User Number ${i + 1}`, username: `user${i + 1}`, birthday: 1_000_000 + i * 86_400 }));
const PRODUCTS: Product[] = Array.from({ length: 5 }, (_, i) => ({ upc: String(i + 1), name: `Product ${i + 1}`, price: 100 + i * 137, weight: 10 + i * 9 }));
/** Two reviews per user, spread over the products (the fifth has none, as an empty list must be answered too). */
const REVIEWS: Review[] = Array.from({ length: 8 }, (_, i) => ({
  id: String(i + 1),
  body: prose(i + 1, 110 + ((i * 29) % 100)),
  authorId: USERS[i % USERS.length].id,
  upc: PRODUCTS[i % (PRODUCTS.length - 1)].upc,
}));

export interface BenchmarkSubgraph {
  name: string;
  typeDefs: string;
  resolvers: GraphQLResolverMap<unknown>;
}

export const BENCHMARK_SUBGRAPHS: BenchmarkSubgraph[] = [
  {
    name: 'accounts',
    typeDefs: `${FEDERATION(['key', 'shareable'])}
      type Query { me: User user(id: ID!): User users: [User] }
      type User @key(fields: "id") { id: ID! name: String username: String @shareable birthday: Int }`,
    resolvers: {
      Query: { me: () => USERS[0], user: (_: unknown, { id }: { id: string }) => find(USERS, 'id', id), users: () => USERS },
      User: { __resolveReference: (ref: { id: string }) => find(USERS, 'id', ref.id) },
    },
  },
  {
    name: 'inventory',
    typeDefs: `${FEDERATION(['key', 'external', 'requires'])}
      type Product @key(fields: "upc") { upc: String! weight: Int @external price: Int @external inStock: Boolean shippingEstimate: Int @requires(fields: "price weight") }`,
    resolvers: {
      Product: {
        __resolveReference: (ref: { upc: string; price?: number; weight?: number }) => ref,
        inStock: (ref: { upc: string }) => Number(ref.upc) % 3 !== 0,
        // Free above 1000, else half the weight: needs both fields from the products subgraph (@requires).
        shippingEstimate: (ref: { price?: number; weight?: number }) => {
          if (ref.price === undefined || ref.weight === undefined) throw new Error('shippingEstimate needs price and weight (@requires)');
          return ref.price > 1000 ? 0 : Math.round(ref.weight / 2);
        },
      },
    },
  },
  {
    name: 'products',
    typeDefs: `${FEDERATION(['key'])}
      type Query { topProducts(first: Int = 5): [Product] }
      type Product @key(fields: "upc") { upc: String! name: String price: Int weight: Int }`,
    resolvers: {
      Query: { topProducts: (_: unknown, { first }: { first: number }) => PRODUCTS.slice(0, first) },
      Product: { __resolveReference: (ref: { upc: string }) => find(PRODUCTS, 'upc', ref.upc) },
    },
  },
  {
    name: 'reviews',
    typeDefs: `${FEDERATION(['key', 'external', 'provides'])}
      type Review @key(fields: "id") { id: ID! body: String product: Product author: User @provides(fields: "username") }
      type User @key(fields: "id") { id: ID! username: String @external reviews: [Review] }
      type Product @key(fields: "upc") { upc: String! reviews: [Review] }`,
    resolvers: {
      Review: {
        __resolveReference: (ref: { id: string }) => find(REVIEWS, 'id', ref.id),
        product: (review: Review) => ({ upc: review.upc }),
        author: (review: Review) => ({ id: review.authorId, username: find(USERS, 'id', review.authorId)?.username }),
      },
      User: {
        __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
        reviews: (user: { id: string }) => REVIEWS.filter((r) => r.authorId === user.id),
      },
      Product: {
        __resolveReference: (ref: { upc: string }) => ({ upc: ref.upc }),
        reviews: (product: { upc: string }) => REVIEWS.filter((r) => r.upc === product.upc),
      },
    },
  },
];

/** The public benchmark's query, with its fragments. */
export const BENCHMARK_QUERY = `fragment User on User { id username name }
fragment Review on Review { id body }
fragment Product on Product { inStock name price shippingEstimate upc weight }
query TestQuery {
  users {
    ...User
    reviews { ...Review product { ...Product reviews { ...Review author { ...User reviews { ...Review product { ...Product } } } } } }
  }
  topProducts {
    ...Product
    reviews { ...Review author { ...User reviews { ...Review product { ...Product } } } }
  }
}`;

function schemaOf(subgraph: BenchmarkSubgraph): GraphQLSchema {
  return buildSubgraphSchema([{ typeDefs: parse(subgraph.typeDefs), resolvers: subgraph.resolvers }]);
}

/** Request bodies a subgraph keeps answers for: a gateway sends the same few fetches again and again (one per plan node, with the same representations). */
const RESPONSES = 1_000;

/** Serves `subgraph` on 127.0.0.1:`port`: POST a JSON body, get the execution result as JSON. */
function serve(subgraph: BenchmarkSubgraph, port: number): void {
  const schema = schemaOf(subgraph);
  // A gateway sends the same few queries again and again; each is parsed and validated once.
  const documents = new Map<string, { document: DocumentNode } | { errors: readonly GraphQLError[] }>();
  const prepare = (query: string) => {
    let prepared = documents.get(query);
    if (!prepared) {
      try {
        const document = parse(query);
        const errors = validate(schema, document);
        prepared = errors.length ? { errors } : { document };
      } catch (error) {
        prepared = { errors: [error as GraphQLError] };
      }
      documents.set(query, prepared);
    }
    return prepared;
  };
  const answers = new Map<string, Buffer>();
  const answer = async (body: string): Promise<Buffer> => {
    const known = answers.get(body);
    if (known) return known;
    const { query, variables, operationName } = JSON.parse(body) as { query: string; variables?: Record<string, unknown>; operationName?: string };
    const prepared = prepare(query);
    const result = 'errors' in prepared ? { errors: prepared.errors } : await execute({ schema, document: prepared.document, variableValues: variables, operationName });
    const bytes = Buffer.from(JSON.stringify(result));
    if (!result.errors && answers.size < RESPONSES) answers.set(body, bytes);
    return bytes;
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const bytes = await answer(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes.length }).end(bytes);
    });
  });
  // Idle connections stay open longer than any gateway's pool keeps them: a server closing one as a gateway reuses it is an ECONNRESET.
  server.keepAliveTimeout = 120_000;
  server.listen(port, '127.0.0.1');
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}

export interface BenchmarkSubgraphs {
  /** Subgraph name → its port. */
  ports: Record<string, number>;
  /** The supergraph routing to them, written to a file as `--supergraph` reads it. */
  supergraphFile: string;
  stop(): Promise<void>;
}

/** Spawns the four subgraphs, each in its own process on a free port, waits until each answers, and composes the supergraph. */
export async function startBenchmarkSubgraphs(): Promise<BenchmarkSubgraphs> {
  const running: StockGateway[] = [];
  const directory = mkdtempSync(path.join(tmpdir(), 'sluice-bench-federation-'));
  const stop = async () => {
    await Promise.all(running.map((subgraph) => subgraph.stop()));
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    const ports: Record<string, number> = {};
    for (const subgraph of BENCHMARK_SUBGRAPHS) ports[subgraph.name] = await freePort();
    const started = await Promise.allSettled(
      BENCHMARK_SUBGRAPHS.map((subgraph) =>
        spawnGateway(`the benchmark's ${subgraph.name} subgraph`, [process.execPath, '--import', 'tsx', __filename], {
          cwd: ROOT,
          env: { ...process.env, BENCH_SUBGRAPH: subgraph.name, BENCH_SUBGRAPH_PORT: String(ports[subgraph.name]) },
          url: `http://127.0.0.1:${ports[subgraph.name]}/graphql`,
        }),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') running.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const composed = composeServices(BENCHMARK_SUBGRAPHS.map((s, i) => ({ name: s.name, url: running[i].url, typeDefs: parse(s.typeDefs) })));
    if (composed.errors) throw new Error(`the benchmark graph did not compose:\n${composed.errors.map((e) => e.message).join('\n')}`);
    const supergraphFile = path.join(directory, 'supergraph.graphql');
    writeFileSync(supergraphFile, composed.supergraphSdl);
    return { ports, supergraphFile, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

if (require.main === module) {
  const subgraph = BENCHMARK_SUBGRAPHS.find((s) => s.name === process.env.BENCH_SUBGRAPH);
  if (!subgraph) throw new Error(`BENCH_SUBGRAPH must be one of ${BENCHMARK_SUBGRAPHS.map((s) => s.name).join(', ')}, got ${process.env.BENCH_SUBGRAPH}`);
  serve(subgraph, Number(process.env.BENCH_SUBGRAPH_PORT));
}
