/**
 * The policy read from a composed supergraph, the filtering of operations
 * and the completion of results, over a small two-subgraph supergraph
 * composed here with @apollo/composition.
 */
import { composeServices } from '@apollo/composition';
import { parse, print, type GraphQLFormattedError } from 'graphql';
import { SubscriptionPlanner } from '../../subscriptions/planner';
import type { GatewayContext } from '../context';
import { OperationState } from '../../pipeline/operation-state';
import { authorization } from './feature';
import { filterOperation } from './filter';
import { supergraphForGateway } from './gateway-supergraph';
import { AuthorizationPolicy, evaluate, type Caller } from './policy';
import { completeResult, type ResultLike } from './response';

const link = (imports: string) => `extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: [${imports}])`;

const accounts = parse(`
  ${link('"@key", "@authenticated", "@requiresScopes"')}
  type Query {
    status: String
    me: User @authenticated
    vault: String @requiresScopes(scopes: [["a", "b"], ["c"]])
    audit: [Entry!]! @requiresScopes(scopes: [["audit"]])
    search: [Result!]!
    node(id: ID!): Node
  }
  type Mutation { rename(name: String!): User @requiresScopes(scopes: [["profile:write"]]) }
  interface Node { id: ID! }
  union Result = User | Post
  type User implements Node @key(fields: "id") {
    id: ID!
    name: String!
    email: String @requiresScopes(scopes: [["email:read"]])
  }
  type Post implements Node @key(fields: "id") {
    id: ID!
    title: String!
    draft: Draft
  }
  type Draft @authenticated { text: String }
  type Entry { at: String! }
  type Subscription { ticks: Tick! @authenticated }
  type Tick { n: Int! secret: String @requiresScopes(scopes: [["tick:secret"]]) }
`);

const billing = parse(`
  ${link('"@key", "@requiresScopes"')}
  type User @key(fields: "id") {
    id: ID!
    balance: Balance! @requiresScopes(scopes: [["billing:read"]])
    wallet: Wallet!
  }
  type Balance { total: Int! }
  type Wallet { iban: String! @requiresScopes(scopes: [["billing:iban"]]) }
`);

const composed = composeServices([
  { name: 'accounts', url: 'http://accounts.test/graphql', typeDefs: accounts },
  { name: 'billing', url: 'http://billing.test/graphql', typeDefs: billing },
]);
if (composed.errors) throw new Error(composed.errors.map((e) => e.message).join('\n'));
const supergraph = composed.supergraphSdl;
const schema = new SubscriptionPlanner(supergraphForGateway(supergraph)).schema;
const policy = AuthorizationPolicy.fromSupergraph(supergraph);

const anonymous: Caller = { sub: null, scopes: [] };
const user = (...scopes: string[]): Caller => ({ sub: 'u1', scopes });

function filter(query: string, caller: Caller, operationName?: string) {
  return filterOperation(policy, schema, parse(query), operationName, caller);
}
const compact = (query: string) => print(parse(query)).replace(/\s+/g, ' ');
const printed = (result: ReturnType<typeof filter>) => print(result.document).replace(/\s+/g, ' ');
const codes = (errors: readonly GraphQLFormattedError[] | undefined) => (errors ?? []).map((e) => [e.path?.join('.'), e.extensions?.code]);

describe('the policy', () => {
  it('finds the directives in the supergraph behind their @link', () => {
    expect(supergraph).toContain('https://specs.apollo.dev/requiresScopes/v0.1');
    expect(supergraph).toContain('https://specs.apollo.dev/authenticated/v0.1');
    expect(policy.isEmpty).toBe(false);
  });

  it('follows a spec renamed with "as:"', () => {
    const renamed = supergraph
      .replace('@link(url: "https://specs.apollo.dev/authenticated/v0.1"', '@link(url: "https://specs.apollo.dev/authenticated/v0.1", as: "signedIn"')
      .replace(/@authenticated\b/g, '@signedIn');
    const renamedPolicy = AuthorizationPolicy.fromSupergraph(renamed);
    expect(filterOperation(renamedPolicy, schema, parse('{ me { id } }'), undefined, anonymous).refusals).toHaveLength(1);
    expect(filterOperation(renamedPolicy, schema, parse('{ me { id } }'), undefined, user()).changed).toBe(false);
  });

  it('reads @requiresScopes(scopes: [["a","b"],["c"]]) as (a AND b) OR c', () => {
    const vault = policy.fieldRequirement(schema, schema.getQueryType()!, 'vault', schema.getType('String')!);
    expect(evaluate(vault, user('a', 'b'))).toBeUndefined();
    expect(evaluate(vault, user('c'))).toBeUndefined();
    // What is missing is the alternative closest to being met.
    expect(evaluate(vault, user('a'))).toEqual({ code: 'FORBIDDEN', required: [[['a', 'b'], ['c']]], missing: ['b'] });
    expect(evaluate(vault, user('b', 'x'))).toEqual({ code: 'FORBIDDEN', required: [[['a', 'b'], ['c']]], missing: ['a'] });
    expect(evaluate(vault, user('x'))).toEqual({ code: 'FORBIDDEN', required: [[['a', 'b'], ['c']]], missing: ['c'] });
    expect(evaluate(vault, anonymous)).toEqual({ code: 'UNAUTHENTICATED' });
  });
});

describe('filtering an operation', () => {
  it('leaves an allowed operation untouched, the same document object', () => {
    const document = parse('{ status me { id name email balance { total } } }');
    const result = filterOperation(policy, schema, document, undefined, user('email:read', 'billing:read'));
    expect(result).toMatchObject({ changed: false, empty: false, refusals: [] });
    expect(result.document).toBe(document);
  });

  it('removes an @authenticated field for an anonymous caller with UNAUTHENTICATED, keeping the rest', () => {
    const result = filter('{ status me { id } }', anonymous);
    expect(printed(result)).toBe(compact('{ status }'));
    expect(result.empty).toBe(false);
    const completed = completeResult(result, anonymous, { data: { status: 'ok' } });
    expect(completed.data).toEqual({ status: 'ok', me: null });
    expect(codes(completed.errors)).toEqual([['me', 'UNAUTHENTICATED']]);
    expect(completed.errors![0].message).toContain('"me" (Query.me) requires a signed-in caller');
  });

  it('names the missing scope, what was expected and what was got in FORBIDDEN', () => {
    const result = filter('{ status vault }', user('a', 'x'));
    const [error] = completeResult(result, user('a', 'x'), { data: { status: 'ok' } }).errors!;
    expect(error).toMatchObject({
      path: ['vault'],
      extensions: { code: 'FORBIDDEN', field: 'Query.vault', missingScopes: ['b'], requiredScopes: [[['a', 'b'], ['c']]], grantedScopes: ['a', 'x'] },
    });
    expect(error.message).toBe('the field "vault" (Query.vault) needs the scope b: expected a and b or c, got a, x');
  });

  it('filters inside named fragments and inline fragments, with aliases in the paths', () => {
    const query = `
      query Q { status who: me { ...Self } }
      fragment Self on User { id mail: email ... on User { money: balance { total } } }`;
    const caller = user('email:read');
    const result = filter(query, caller, 'Q');
    expect(printed(result)).toBe(compact('query Q { status who: me { ... on User { id mail: email } } }'));
    const completed = completeResult(result, caller, { data: { status: 'ok', who: { id: 'u1', mail: 'u@x' } } });
    // balance is non-null: its null propagates to the nullable `who`.
    expect(completed.data).toEqual({ status: 'ok', who: null });
    expect(codes(completed.errors)).toEqual([['who.money', 'FORBIDDEN']]);
  });

  it('propagates a removed non-null field through non-null parents to the nearest nullable one', () => {
    const caller = user();
    const result = filter('{ me { id wallet { iban } } }', caller);
    // wallet has nothing left to select, so it goes too; Wallet! and iban! are non-null, me is nullable.
    expect(printed(result)).toBe(compact('{ me { id } }'));
    const completed = completeResult(result, caller, { data: { me: { id: 'u1' } } });
    expect(completed.data).toEqual({ me: null });
    expect(codes(completed.errors)).toEqual([['me.wallet.iban', 'FORBIDDEN']]);
  });

  it('sets nullable removed fields to null inside every list item', () => {
    const caller = anonymous;
    const result = filter('{ search { ... on Post { title draft { text } } } }', caller);
    expect(printed(result)).toBe(compact('{ search { ... on Post { title } __sluiceAuthzTypename: __typename } }'));
    const completed = completeResult(result, caller, {
      data: { search: [{ __sluiceAuthzTypename: 'Post', title: 'a' }, { __sluiceAuthzTypename: 'User' }, { __sluiceAuthzTypename: 'Post', title: 'b' }] },
    });
    expect(completed.data).toEqual({ search: [{ title: 'a', draft: null }, {}, { title: 'b', draft: null }] });
  });

  it('asks for the type name when a removal is under a type condition, so only objects of that type get the null', () => {
    const caller = user();
    const result = filter('{ search { ... on User { id email } ... on Post { title } } }', caller);
    expect(printed(result)).toBe(compact('{ search { ... on User { id } ... on Post { title } __sluiceAuthzTypename: __typename } }'));
    const completed = completeResult(result, caller, {
      data: {
        search: [
          { __sluiceAuthzTypename: 'User', id: 'u1' },
          { __sluiceAuthzTypename: 'Post', title: 't' },
        ],
      },
    });
    expect(completed.data).toEqual({ search: [{ id: 'u1', email: null }, { title: 't' }] });
  });

  it('requires on an interface field what every implementation requires', () => {
    const result = filter('{ node(id: "1") { id ... on Post { draft { text } } } }', anonymous);
    expect(printed(result)).toBe(compact('{ node(id: "1") { id __sluiceAuthzTypename: __typename } }'));
    expect(result.refusals.map((r) => [r.path.join('.'), r.coordinate])).toEqual([['node.draft', 'Post.draft']]);
  });

  it('never filters introspection', () => {
    const query = '{ __typename __schema { queryType { name } } __type(name: "User") { name } me { __typename } }';
    const result = filter(query, anonymous);
    expect(printed(result)).toBe(compact('{ __typename __schema { queryType { name } } __type(name: "User") { name } }'));
    expect(result.refusals.map((r) => r.path.join('.'))).toEqual(['me']);
  });

  it('sends nothing when every root field is removed, and answers with nulls and errors', () => {
    const result = filter('query($n: String!) { me { id } vault renamed: me { name } } ', anonymous);
    expect(result.empty).toBe(true);
    const completed = completeResult(result, anonymous, {});
    expect(completed.data).toEqual({ me: null, vault: null, renamed: null });
    expect(codes(completed.errors)).toEqual([
      ['me', 'UNAUTHENTICATED'],
      ['vault', 'UNAUTHENTICATED'],
      ['renamed', 'UNAUTHENTICATED'],
    ]);
  });

  it('sends nothing when a removed non-null root field would null all of data', () => {
    const result = filter('{ status audit { at } }', user());
    expect(result.empty).toBe(true);
    const completed = completeResult(result, user(), {});
    expect(completed.data).toBeNull();
    expect(codes(completed.errors)).toEqual([['audit', 'FORBIDDEN']]);
  });

  it('drops the variables only removed fields used', () => {
    const result = filter('mutation($name: String!) { rename(name: $name) { id } }', user());
    expect(result.empty).toBe(true);
    const partial = filter('query($id: ID!, $x: Boolean!) { status @include(if: $x) me { id } node(id: $id) { ... on Post { draft { text } } } }', anonymous);
    // node has nothing left once draft goes, so it goes too, and $id with it.
    expect(printed(partial)).toBe(compact('query($x: Boolean!) { status @include(if: $x) }'));
    expect(partial.refusals.map((r) => r.path.join('.'))).toEqual(['me', 'node.draft']);
  });

  it('inlines the fragments of parts where nothing was removed too, as the filtered document has no fragment definitions', () => {
    const result = filter('{ vault me { ...U } } fragment U on User { id }', user());
    expect(printed(result)).toBe(compact('{ me { ... on User { id } } }'));
    const kept = filter('{ search { ...P } me { email } } fragment P on Post { title }', user());
    // me has nothing left without email:read, so it goes; search keeps its fragment, inlined.
    expect(printed(kept)).toBe(compact('{ search { ... on Post { title } } }'));
  });

  it('reports a field reached twice (by two fragments) once', () => {
    const result = filter('{ me { ...A ...B } } fragment A on User { id email } fragment B on User { email }', user());
    expect(result.refusals.map((r) => r.path.join('.'))).toEqual(['me.email']);
  });
});

/** The operation as the pipeline hands it to the feature, for `caller`. */
function operationFor(document: ReturnType<typeof parse>, caller: Caller, subscription = false): OperationState {
  const operation = new OperationState({ identity: { claims: caller } } as GatewayContext, subscription);
  operation.document = document;
  operation.schema = schema;
  operation.queryHash = 'original';
  return operation;
}

describe('the feature, on a resolved operation', () => {
  /** Runs the feature's operationDidResolve for `caller` on `document`; returns the document to plan and its hash. */
  async function resolve(feature: ReturnType<typeof authorization>, document: ReturnType<typeof parse>, caller: Caller) {
    const operation = operationFor(document, caller);
    expect(await feature.operationDidResolve!(operation)).toBeUndefined();
    return { printed: print(operation.document).replace(/\s+/g, ' '), queryHash: operation.queryHash };
  }

  it('filters one document object for each kind of caller, and callers alike share the filtering and its plan hash', async () => {
    const feature = authorization(policy);
    // Apollo Server's document cache hands every request with this text the same object.
    const document = parse('{ status me { id email } }');
    const full = await resolve(feature, document, user('email:read'));
    const noEmail = await resolve(feature, document, user());
    const anonymousCaller = await resolve(feature, document, anonymous);
    const noEmailAgain = await resolve(feature, document, { sub: 'u2', scopes: [] } satisfies GatewayContext['identity']['claims']);
    expect(full).toEqual({ printed: compact('{ status me { id email } }'), queryHash: 'original' });
    expect(noEmail.printed).toBe(compact('{ status me { id } }'));
    expect(anonymousCaller.printed).toBe(compact('{ status }'));
    expect(noEmailAgain).toEqual(noEmail);
    expect(new Set([full.queryHash, noEmail.queryHash, anonymousCaller.queryHash]).size).toBe(3);
  });
});

describe('the supergraph handed to @apollo/gateway', () => {
  it('keeps the enforced specs linked but without their SECURITY purpose, which federation-internals would refuse', () => {
    expect(() => new SubscriptionPlanner(supergraph)).toThrow(/authenticated\/v0\.1 is for: SECURITY but is unsupported/);
    const handed = supergraphForGateway(supergraph);
    expect(handed).toContain('@link(url: "https://specs.apollo.dev/requiresScopes/v0.1")');
    expect(handed).not.toContain('for: SECURITY');
  });

  it('leaves any other security feature in place, so a gateway that cannot enforce it still refuses to start', () => {
    const withPolicy = supergraph.replace(
      '@link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)',
      '@link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)\n  @link(url: "https://specs.apollo.dev/policy/v0.1", for: SECURITY)',
    );
    expect(withPolicy).toContain('policy/v0.1');
    expect(supergraphForGateway(withPolicy)).toContain('@link(url: "https://specs.apollo.dev/policy/v0.1", for: SECURITY)');
  });
});

describe('the feature, on subscriptions', () => {
  const ticks = 'subscription { ticks { n secret } }';

  it('refuses a subscription whose root field the caller may not see', async () => {
    const refused = await authorization(policy).operationDidResolve!(operationFor(parse(ticks), anonymous, true));
    expect(refused?.map((e) => [e.path?.join('.'), e.extensions.code])).toEqual([['ticks', 'UNAUTHENTICATED']]);
  });

  it('removes a nested field and completes every event with its null and error', async () => {
    const feature = authorization(policy);
    const operation = operationFor(parse(ticks), user(), true);
    expect(await feature.operationDidResolve!(operation)).toBeUndefined();
    expect(print(operation.document).replace(/\s+/g, ' ')).toBe(compact('subscription { ticks { n } }'));
    const events: ResultLike[] = [{ data: { ticks: { n: 1 } } }, { data: { ticks: { n: 2 } } }].map((event) => feature.eventWillSend!(operation, event));
    expect(events.map((e) => e.data)).toEqual([{ ticks: { n: 1, secret: null } }, { ticks: { n: 2, secret: null } }]);
    expect(events.map((e) => codes(e.errors))).toEqual([[['ticks.secret', 'FORBIDDEN']], [['ticks.secret', 'FORBIDDEN']]]);
  });
});
