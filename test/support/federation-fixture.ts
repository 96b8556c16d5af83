/**
 * A small federated graph that is not Sluice's: four subgraphs (accounts,
 * products, inventory, reviews) with entities across subgraphs, an interface
 * entity and an `@interfaceObject`, `@requires`, `@provides`, `@external`, a
 * union, and resolvers that throw (nullable and non-null, in nested entity
 * fetches). It declares no `@cost`, `@listSize` or auth directive, as another
 * team's graph would not. Each subgraph is a real HTTP server on port 0.
 *
 * Used by the federation parity test (Sluice against stock @apollo/gateway,
 * byte for byte) and by the foreign-graph defaults test; `PARITY_QUERIES` is
 * the list a new plan executor must answer exactly as stock does.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { composeServices } from '@apollo/composition';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper';
import { graphql, GraphQLError, parse, type GraphQLSchema } from 'graphql';

/** The `@link` a Federation 2 subgraph's SDL starts with, importing `imports`. */
export const FEDERATION = (imports: string[]) => `extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: [${imports.map((i) => `"@${i}"`).join(', ')}])`;

interface User {
  id: string;
  name: string;
  username: string;
}
interface Product {
  __typename: 'Book' | 'Furniture';
  upc: string;
  name: string;
  price: number;
  weight: number;
  author?: string;
  material?: string;
}
interface Review {
  id: string;
  body: string;
  rating: number;
  authorId: string;
  upc: string;
}

const USERS: User[] = Array.from({ length: 6 }, (_, i) => ({ id: `u${i + 1}`, name: `User ${i + 1}`, username: `user${i + 1}` }));
const PRODUCTS: Product[] = Array.from({ length: 12 }, (_, i) =>
  i % 3 === 2
    ? { __typename: 'Furniture', upc: `p${i + 1}`, name: `Chair ${i + 1}`, price: 1_000 + i * 37, weight: 5 + i, material: i % 2 ? 'oak' : 'pine' }
    : { __typename: 'Book', upc: `p${i + 1}`, name: `Book ${i + 1}`, price: 100 + i * 11, weight: 1 + (i % 4), author: `Author ${(i % 5) + 1}` },
);
const REVIEWS: Review[] = Array.from({ length: 40 }, (_, i) => ({
  id: `r${i + 1}`,
  body: `Review ${i + 1} says "${i % 2 ? 'good' : 'fine'}" \u00e9t\u00e9 \u2713`,
  rating: (i % 5) + 1,
  authorId: USERS[i % USERS.length].id,
  upc: PRODUCTS[(i * 7) % PRODUCTS.length].upc,
}));
const CATEGORIES = [{ name: 'Reading' }, { name: 'Seating' }];

/** The upc whose stock lookup fails: `warehouse` (nullable) and `restockDate` (non-null) throw for it. */
export const FAILING_UPC = 'p5';

export const byId = <T, K extends keyof T>(items: T[], key: K, value: unknown) => items.find((item) => item[key] === value) ?? null;

interface SubgraphDefinition {
  name: string;
  typeDefs: string;
  resolvers: GraphQLResolverMap<unknown>;
}

export const SUBGRAPHS: SubgraphDefinition[] = [
  {
    name: 'accounts',
    typeDefs: `${FEDERATION(['key', 'shareable'])}
      type Query { me: User users: [User!]! user(id: ID!): User }
      type User @key(fields: "id") { id: ID! name: String! username: String! @shareable bestFriend: User }`,
    resolvers: {
      Query: { me: () => USERS[0], users: () => USERS, user: (_: unknown, { id }: { id: string }) => byId(USERS, 'id', id) },
      User: {
        __resolveReference: (ref: { id: string }) => byId(USERS, 'id', ref.id),
        // A chain as long as a query asks for: what deep queries walk.
        bestFriend: (user: User) => USERS[(USERS.indexOf(user) + 1) % USERS.length],
      },
    },
  },
  {
    name: 'products',
    typeDefs: `${FEDERATION(['key'])}
      type Query { topProducts(first: Int = 5): [Product!]! product(upc: ID!): Product search(text: String!): [SearchResult!]! }
      interface Product @key(fields: "upc") { upc: ID! name: String! price: Int! weight: Int! }
      type Book implements Product @key(fields: "upc") { upc: ID! name: String! price: Int! weight: Int! author: String! }
      type Furniture implements Product @key(fields: "upc") { upc: ID! name: String! price: Int! weight: Int! material: String! }
      type Category { name: String! products: [Product!]! }
      union SearchResult = Book | Furniture | Category`,
    resolvers: {
      Query: {
        topProducts: (_: unknown, { first }: { first: number }) => PRODUCTS.slice(0, first),
        product: (_: unknown, { upc }: { upc: string }) => byId(PRODUCTS, 'upc', upc),
        search: (_: unknown, { text }: { text: string }) => [
          ...PRODUCTS.filter((p) => p.name.toLowerCase().includes(text.toLowerCase())),
          ...CATEGORIES.filter((c) => c.name.toLowerCase().includes(text.toLowerCase())),
        ],
      },
      Product: {
        __resolveType: (product: Product) => product.__typename,
        __resolveReference: (ref: { upc: string }) => byId(PRODUCTS, 'upc', ref.upc),
      },
      Book: { __resolveReference: (ref: { upc: string }) => byId(PRODUCTS, 'upc', ref.upc) },
      Furniture: { __resolveReference: (ref: { upc: string }) => byId(PRODUCTS, 'upc', ref.upc) },
      Category: { products: (category: { name: string }) => PRODUCTS.filter((p) => (category.name === 'Reading') === (p.__typename === 'Book')) },
      SearchResult: { __resolveType: (item: { __typename?: string }) => item.__typename ?? 'Category' },
    },
  },
  {
    name: 'inventory',
    typeDefs: `${FEDERATION(['key', 'external', 'requires'])}
      type Book @key(fields: "upc") { upc: ID! weight: Int! @external shippingEstimate: Int! @requires(fields: "weight") inStock: Boolean! warehouse: String restockDate: String! }
      type Furniture @key(fields: "upc") { upc: ID! weight: Int! @external shippingEstimate: Int! @requires(fields: "weight") inStock: Boolean! warehouse: String restockDate: String! }`,
    resolvers: Object.fromEntries(
      ['Book', 'Furniture'].map((type) => [
        type,
        {
          __resolveReference: (ref: { upc: string; weight?: number }) => ref,
          // Needs the weight from the products subgraph: the gateway must have fetched it first.
          shippingEstimate: (ref: { weight?: number }) => {
            if (ref.weight === undefined) throw new Error('shippingEstimate needs the weight (@requires)');
            return ref.weight * (type === 'Book' ? 3 : 25);
          },
          inStock: (ref: { upc: string }) => Number(ref.upc.slice(1)) % 4 !== 0,
          warehouse: (ref: { upc: string }) => {
            if (ref.upc === FAILING_UPC) throw new GraphQLError(`warehouse of ${ref.upc} unavailable`, { extensions: { code: 'WAREHOUSE_DOWN' } });
            return `wh-${Number(ref.upc.slice(1)) % 3}`;
          },
          restockDate: (ref: { upc: string }) => {
            if (ref.upc === FAILING_UPC) throw new Error(`no restock date for ${ref.upc}`);
            return `2026-12-${String(10 + (Number(ref.upc.slice(1)) % 18)).padStart(2, '0')}`;
          },
        },
      ]),
    ),
  },
  {
    name: 'reviews',
    typeDefs: `${FEDERATION(['key', 'external', 'provides', 'interfaceObject'])}
      type Query { latestReviews(first: Int = 5): [Review!]! }
      type Mutation { previewReview(input: ReviewInput!): Review! }
      input ReviewInput { upc: ID! body: String! rating: Int! = 3 authorId: ID! }
      type Review { id: ID! body: String! rating: Int! author: User! @provides(fields: "username") product: Product }
      type User @key(fields: "id") { id: ID! username: String! @external reviews: [Review!]! numberOfReviews: Int! }
      type Product @key(fields: "upc") @interfaceObject { upc: ID! reviews: [Review!]! averageRating: Float }`,
    resolvers: {
      Query: { latestReviews: (_: unknown, { first }: { first: number }) => REVIEWS.slice(-first).reverse() },
      // Builds the review without keeping it, so that every gateway compared gets the same answer.
      Mutation: { previewReview: (_: unknown, { input }: { input: Omit<Review, 'id'> }) => ({ id: `preview-${input.upc}`, ...input }) },
      Review: {
        // Provided: the reviews subgraph knows usernames, so the gateway need not ask accounts for them.
        author: (review: Review) => ({ id: review.authorId, username: byId(USERS, 'id', review.authorId)?.username }),
        product: (review: Review) => ({ upc: review.upc }),
      },
      User: {
        __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
        reviews: (user: { id: string }) => REVIEWS.filter((r) => r.authorId === user.id),
        numberOfReviews: (user: { id: string }) => REVIEWS.filter((r) => r.authorId === user.id).length,
      },
      Product: {
        __resolveReference: (ref: { upc: string }) => ({ upc: ref.upc }),
        reviews: (product: { upc: string }) => REVIEWS.filter((r) => r.upc === product.upc),
        averageRating: (product: { upc: string }) => {
          const ratings = REVIEWS.filter((r) => r.upc === product.upc).map((r) => r.rating);
          return ratings.length ? ratings.reduce((a, b) => a + b, 0) / ratings.length : null;
        },
      },
    },
  },
];

export interface RunningFixture {
  /** Subgraph name → its URL. */
  urls: Record<string, string>;
  /** The supergraph composed with these URLs... */
  supergraphSdl: string;
  /** ...and written to a file, as `--supergraph` (startGateway's `supergraphFile`) reads it. */
  supergraphFile: string;
  stop(): Promise<void>;
}

function schemaOf(subgraph: SubgraphDefinition): GraphQLSchema {
  return buildSubgraphSchema([{ typeDefs: parse(subgraph.typeDefs), resolvers: subgraph.resolvers }]);
}

/** A minimal GraphQL-over-HTTP server: POST a JSON body, get the execution result as JSON. Headers (a signed identity) are ignored. */
async function serveSubgraph(schema: GraphQLSchema): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      const { query, variables, operationName } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { query: string; variables?: Record<string, unknown>; operationName?: string };
      const result = await graphql({ schema, source: query, variableValues: variables, operationName });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result));
    });
  });
  // Idle connections stay open longer than any gateway's pool keeps them: a server closing one as a gateway reuses it is an ECONNRESET.
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** Composes the fixture's subgraphs for these URLs; throws the composition errors if any. */
export function composeFixture(urls: Record<string, string>): string {
  const result = composeServices(SUBGRAPHS.map((s) => ({ name: s.name, url: urls[s.name], typeDefs: parse(s.typeDefs) })));
  if (result.errors) throw new Error(`fixture composition failed:\n${result.errors.map((e) => e.message).join('\n')}`);
  return result.supergraphSdl;
}

/** Starts every subgraph on a free port and composes the supergraph that routes to them. */
export async function startFederationFixture(): Promise<RunningFixture> {
  const servers = await Promise.all(SUBGRAPHS.map(async (s) => [s.name, await serveSubgraph(schemaOf(s))] as const));
  const urls = Object.fromEntries(servers.map(([name, server]) => [name, `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`]));
  const supergraphSdl = composeFixture(urls);
  const directory = mkdtempSync(path.join(tmpdir(), 'federation-fixture-'));
  const supergraphFile = path.join(directory, 'supergraph.graphql');
  writeFileSync(supergraphFile, supergraphSdl);
  return {
    urls,
    supergraphSdl,
    supergraphFile,
    stop: async () => {
      rmSync(directory, { recursive: true, force: true });
      await Promise.all(
        servers.map(([, server]) => {
          server.closeAllConnections();
          return new Promise((resolve) => server.close(resolve));
        }),
      );
    },
  };
}

export interface StockGateway {
  url: string;
  stop(): Promise<void>;
}

/** Stock @apollo/gateway under @apollo/server's standalone server, both with their defaults: what Sluice is compared with. */
export async function startStockGateway(supergraphSdl: string): Promise<StockGateway> {
  const server = new ApolloServer({ gateway: new ApolloGateway({ supergraphSdl }) });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  return { url, stop: () => server.stop() };
}

/** POSTs an operation; the status and the body exactly as sent. */
export async function postOperation(url: string, { query, variables, operationName }: Omit<ParityQuery, 'name'>): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables, operationName }) });
  return { status: response.status, body: await response.text() };
}

export interface ParityQuery {
  name: string;
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

/** Federated queries whose answers Sluice must give byte for byte as stock @apollo/gateway does. */
export const PARITY_QUERIES: ParityQuery[] = [
  { name: 'entity across subgraphs', query: '{ me { id name username reviews { id body rating } numberOfReviews } }' },
  {
    name: 'interface entity with @interfaceObject fields',
    query: '{ topProducts(first: 6) { __typename upc name price reviews { id rating author { id name } } averageRating } }',
  },
  {
    name: '@requires across subgraphs',
    query: '{ topProducts(first: 12) { upc ... on Book { shippingEstimate inStock } ... on Furniture { shippingEstimate material inStock } } }',
  },
  { name: '@provides (username from reviews, name from accounts)', query: '{ latestReviews(first: 8) { id author { username } } others: latestReviews(first: 3) { author { username name } } }' },
  {
    name: 'union with entity members',
    query: '{ search(text: "a") { __typename ... on Book { upc author reviews { body } } ... on Furniture { upc material } ... on Category { name products { upc name } } } }',
  },
  {
    name: 'abstract type reached through the interfaceObject subgraph',
    query: '{ latestReviews(first: 10) { id product { __typename upc name ... on Book { author } ... on Furniture { material weight } } } }',
  },
  {
    name: 'fields aliased __proto__ (an ordinary key of the answer)',
    query: '{ __proto__: __typename me { __proto__: reviews { __proto__: body } } p: product(upc: "p2") { __proto__: name } }',
  },
  {
    name: 'aliases and __typename everywhere',
    query: '{ __typename a: product(upc: "p1") { __typename t: name n: upc } b: product(upc: "p3") { __typename upc ... on Furniture { m: material } } missing: product(upc: "nope") { upc } }',
  },
  {
    name: '@skip and @include with variables',
    query:
      'query Q($withReviews: Boolean!, $skipPrice: Boolean!, $first: Int) { topProducts(first: $first) { upc price @skip(if: $skipPrice) reviews @include(if: $withReviews) { id author @include(if: $withReviews) { name } } } }',
    variables: { withReviews: true, skipPrice: true, first: 4 },
  },
  {
    name: '@skip and @include, the other way',
    query:
      'query Q($withReviews: Boolean!, $skipPrice: Boolean!, $first: Int) { topProducts(first: $first) { upc price @skip(if: $skipPrice) reviews @include(if: $withReviews) { id author @include(if: $withReviews) { name } } } }',
    variables: { withReviews: false, skipPrice: false, first: 4 },
  },
  {
    name: 'named and inline fragments, nested',
    query: `query WithFragments { users { ...UserParts } topProducts(first: 3) { ...ProductParts } }
      fragment UserParts on User { id name reviews { ...ReviewParts } }
      fragment ReviewParts on Review { id rating product { ...ProductParts } }
      fragment ProductParts on Product { upc name ... on Book { author shippingEstimate } }`,
  },
  {
    name: 'nullable error in a nested entity fetch',
    query: '{ topProducts(first: 6) { upc ... on Book { warehouse } ... on Furniture { warehouse } } }',
  },
  {
    name: 'non-null error in a nested entity fetch propagates to the nearest nullable parent',
    query: '{ latestReviews(first: 40) { id product { upc ... on Book { restockDate } ... on Furniture { restockDate } } } }',
  },
  { name: 'non-null error nulls a nullable root field', query: '{ product(upc: "p5") { upc ... on Book { restockDate } } fine: product(upc: "p1") { upc } }' },
  {
    name: 'lists of entities, three subgraphs deep',
    query: '{ users { id username reviews { id product { upc name price reviews { author { id name numberOfReviews } } } } } }',
  },
  { name: 'an operation name picked among several', query: 'query A { me { id } } query B { users { name } }', operationName: 'B' },
  { name: 'a validation error', query: '{ topProducts { nope } }' },
  { name: 'a syntax error', query: '{ topProducts { upc }' },
  { name: 'an operation name the document lacks', query: 'query A { me { id } }', operationName: 'B' },
  { name: 'a variable of the wrong type', query: 'query Q($n: Int) { topProducts(first: $n) { upc } }', variables: { n: 'three' } },
  {
    name: 'a mutation with an input object, its default, and entities from three subgraphs in its result',
    query: 'mutation M($input: ReviewInput!) { previewReview(input: $input) { id body rating author { id name username } product { upc name ... on Book { inStock } } } }',
    variables: { input: { upc: 'p4', body: 'new', authorId: 'u2' } },
  },
  { name: 'introspection of the composed schema', query: '{ __schema { queryType { name } mutationType { name } types { kind name possibleTypes { name } } } }' },
  { name: 'introspection of one abstract type', query: '{ __type(name: "Product") { kind fields { name type { kind name ofType { name } } } possibleTypes { name } } }' },
];
