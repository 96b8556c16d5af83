import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, subscribe, type ExecutionResult } from 'graphql';
import { enforceFieldAuthorization } from './field-authorization';

const typeDefs = parse(`
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@authenticated", "@requiresScopes"])
  type Query {
    open: String
    mine: String @authenticated
    embed: String @requiresScopes(scopes: [["inference:invoke"]])
    either: String @requiresScopes(scopes: [["a", "b"], ["c"]])
  }
  type Subscription {
    ticks: Int @requiresScopes(scopes: [["inference:invoke"]])
  }
`);

const schema = buildSubgraphSchema([
  {
    typeDefs,
    resolvers: {
      Query: { open: () => 'open', mine: () => 'mine', embed: () => 'vector', either: () => 'either' },
      Subscription: {
        ticks: {
          subscribe: async function* () {
            yield { ticks: 1 };
          },
        },
      },
    },
  },
]);
enforceFieldAuthorization(schema);

const run = (query: string, sub: string | null, scopes: string[]) =>
  execute({ schema, document: parse(query), contextValue: { identity: { sub, scopes, iat: 0, exp: 0 } } }) as Promise<ExecutionResult>;

describe('enforceFieldAuthorization', () => {
  it('lets through what the signed identity allows', async () => {
    const res = await run('{ open mine embed either }', 'u1', ['inference:invoke', 'c']);
    expect(res).toEqual({ data: { open: 'open', mine: 'mine', embed: 'vector', either: 'either' } });
  });

  it('refuses, field by field, what a forwarded identity does not allow, naming the missing scope', async () => {
    const res = await run('{ open embed either }', 'u1', ['knowledge:read', 'a']);
    expect(res.data).toEqual({ open: 'open', embed: null, either: null });
    expect(res.errors?.map((e) => [e.path?.join('.'), e.extensions.code, e.extensions.missingScopes])).toEqual([
      ['embed', 'FORBIDDEN', ['inference:invoke']],
      ['either', 'FORBIDDEN', ['b']],
    ]);
    expect(res.errors?.[0].message).toBe('the field "Query.embed" needs the scope inference:invoke: expected inference:invoke, got knowledge:read, a');
  });

  it('refuses @authenticated fields to anonymous callers', async () => {
    const res = await run('{ mine }', null, []);
    expect(res.errors?.[0].extensions.code).toBe('UNAUTHENTICATED');
  });

  it('guards subscriptions at subscribe time', async () => {
    const result = (await subscribe({ schema, document: parse('subscription { ticks }'), contextValue: { identity: { sub: 'u1', scopes: [], iat: 0, exp: 0 } } })) as ExecutionResult;
    expect(result.errors?.[0].extensions.code).toBe('FORBIDDEN');
  });
});
