/**
 * Which operations are public (shared between all callers) and the sharing
 * of identical inbound operations in flight, over the real supergraph and a
 * stand-in executor whose answers the test controls.
 */
import path from 'node:path';
import type { GatewayExecutionResult, GatewayExecutor, GatewayGraphQLRequestContext } from '@apollo/server-gateway-interface';
import { parse, type GraphQLSchema } from 'graphql';
import { supergraphForGateway } from '../auth/authorization/gateway-supergraph';
import { AuthorizationPolicy } from '../auth/authorization/policy';
import type { GatewayContext } from '../auth/context';
import { OperationState } from '../pipeline/operation-state';
import { dedupCounters } from './counters';
import { audienceOf, OperationDedup } from './operation-dedup';
import { DEFAULT_PUBLIC_FIELDS, parsePublicFields, PublicOperations } from './public-operations';
import { Env } from '../../lib/config';
import { dedupSettingsFromEnv } from './settings';
import { SubscriptionPlanner } from '../subscriptions/planner';
import { composeSupergraph, readSupergraphConfig } from '../supergraph';

const sdl = composeSupergraph(readSupergraphConfig(path.resolve(__dirname, '..', '..', 'supergraph.yaml')));
const policy = AuthorizationPolicy.fromSupergraph(sdl);
const schema: GraphQLSchema = new SubscriptionPlanner(supergraphForGateway(sdl)).schema;
const publicFields = parsePublicFields('GATEWAY_DEDUP_PUBLIC_FIELDS', DEFAULT_PUBLIC_FIELDS);

describe('PublicOperations', () => {
  const operations = new PublicOperations(policy, publicFields);
  let hash = 0;
  const isPublic = (query: string, operationName?: string) => operations.isPublic(schema, parse(query), operationName, `h${++hash}`);

  it('takes queries of public root fields that select nothing restricted as public', () => {
    expect(isPublic('{ models { id ready pricing { __typename } } }')).toBe(true);
    expect(isPublic('query M($id: ID!) { model(id: $id) { ...F } } fragment F on Model { id kind }')).toBe(true);
    expect(isPublic('{ __schema { queryType { name } } models { id } }')).toBe(true);
  });

  it('takes fields that answer with the caller as private, though they need no authentication: the policy cannot tell', () => {
    expect(policy.fieldRequirement(schema, schema.getQueryType()!, 'me', schema.getType('User')!)).toEqual({ authenticated: false, scopes: [] });
    expect(isPublic('{ me { id email } }')).toBe(false);
    expect(isPublic('{ models { id } me { id } }')).toBe(false);
    expect(isPublic('{ ...R } fragment R on Query { me { id } }')).toBe(false);
  });

  it('takes anything that needs authentication or a scope, at any depth, as private', () => {
    expect(isPublic('{ documents { id } }')).toBe(false);
    const scoped = new PublicOperations(policy, parsePublicFields('X', 'Query.me'));
    expect(scoped.isPublic(schema, parse('{ me { id } }'), undefined, 'a')).toBe(true);
    expect(scoped.isPublic(schema, parse('{ me { id balance { __typename } } }'), undefined, 'b')).toBe(false);
    expect(scoped.isPublic(schema, parse('{ me { ... on User { apiKeys { id } } } }'), undefined, 'c')).toBe(false);
  });

  it('never takes a mutation as public, and judges the named operation of a document', () => {
    const document = 'query A { models { id } } query B { me { id } } mutation C { logout }';
    expect(isPublic(document, 'A')).toBe(true);
    expect(isPublic(document, 'B')).toBe(false);
    expect(isPublic(document, 'C')).toBe(false);
  });

  it('refuses a malformed coordinate at start, naming the variable', () => {
    expect(() => parsePublicFields('GATEWAY_DEDUP_PUBLIC_FIELDS', 'Query.models,models')).toThrow(
      'GATEWAY_DEDUP_PUBLIC_FIELDS expects comma-separated Type.field coordinates (e.g. "Query.models"), but got "models"',
    );
  });
});

describe('audienceOf', () => {
  it('is one for everyone on public data, and the user with their scopes (in any order) otherwise', () => {
    expect(audienceOf(true, { sub: 'a', scopes: ['x'] })).toBe(audienceOf(true, { sub: null, scopes: [] }));
    expect(audienceOf(false, { sub: 'a', scopes: ['x', 'y'] })).toBe(audienceOf(false, { sub: 'a', scopes: ['y', 'x'] }));
    expect(audienceOf(false, { sub: 'a', scopes: ['x'] })).not.toBe(audienceOf(false, { sub: 'b', scopes: ['x'] }));
    expect(audienceOf(false, { sub: 'a', scopes: ['x'] })).not.toBe(audienceOf(false, { sub: 'a', scopes: ['x', 'y'] }));
  });
});

describe('OperationDedup', () => {
  interface Call {
    requestContext: GatewayGraphQLRequestContext;
    resolve: (result: GatewayExecutionResult) => void;
    reject: (error: Error) => void;
  }
  let calls: Call[];
  let executor: GatewayExecutor;
  beforeEach(() => {
    calls = [];
    executor = new OperationDedup(new PublicOperations(policy, publicFields)).wrap((requestContext) => new Promise((resolve, reject) => calls.push({ requestContext, resolve, reject })));
  });

  function cachePolicy() {
    const policy = {
      maxAge: undefined as number | undefined,
      scope: undefined as unknown,
      restrict(hint: { maxAge?: number; scope?: unknown }) {
        if (hint.maxAge !== undefined) policy.maxAge = policy.maxAge === undefined ? hint.maxAge : Math.min(policy.maxAge, hint.maxAge);
        if (hint.scope !== undefined) policy.scope = hint.scope;
      },
    };
    return policy;
  }

  function request(query: string, sub: string | null, scopes: string[] = [], variables: Record<string, unknown> = {}) {
    const document = parse(query);
    const operation = document.definitions.find((d) => d.kind === 'OperationDefinition')!;
    return {
      request: { query, variables },
      schema,
      document,
      operation,
      operationName: null,
      queryHash: `hash:${query}`,
      context: { identity: { claims: { sub, scopes } }, requestId: 'r' },
      overallCachePolicy: cachePolicy(),
    } as unknown as GatewayGraphQLRequestContext;
  }

  const ME = '{ me { id email } }';
  const MODELS = '{ models { id } }';

  it('executes identical queries of one user once and gives every caller the same data, to be serialized once', async () => {
    const before = dedupCounters.deduplicatedOperations;
    const first = request(ME, 'alice', ['billing:read']);
    const results = [executor(first), executor(request(ME, 'alice', ['billing:read'])), executor(request(ME, 'alice', ['billing:read']))];
    expect(calls).toHaveLength(1);
    first.overallCachePolicy.restrict({ maxAge: 30, scope: 'PRIVATE' });
    calls[0].resolve({ data: { me: { id: 'alice', email: 'a@x' } } });
    const [a, b, c] = await Promise.all(results);
    expect(a.data).toEqual({ me: { id: 'alice', email: 'a@x' } });
    expect([b.data, c.data]).toEqual([a.data, a.data]);
    expect(b.data).toBe(a.data);
    expect(c.data).toBe(a.data);
    expect(dedupCounters.deduplicatedOperations - before).toBe(2);
  });

  it('gives each caller of a narrowed document its own copy, which authorization completes in place', async () => {
    const narrowed = (sub: string) => {
      const context = request(ME, sub);
      // What authorization does when it removes fields: the document that runs is one a feature put in place.
      new OperationState(context.context as GatewayContext, false).replaceDocument(context.document, context.queryHash);
      return context;
    };
    const results = [executor(narrowed('alice')), executor(narrowed('alice')), executor(narrowed('alice'))];
    expect(calls).toHaveLength(1);
    calls[0].resolve({ data: { me: { id: 'alice', email: 'a@x' } } });
    const [a, b, c] = await Promise.all(results);
    expect([a.data, b.data, c.data]).toEqual([{ me: { id: 'alice', email: 'a@x' } }, { me: { id: 'alice', email: 'a@x' } }, { me: { id: 'alice', email: 'a@x' } }]);
    (b.data as { me: { email: string } }).me.email = 'edited';
    expect(c.data).toEqual({ me: { id: 'alice', email: 'a@x' } });
    expect(a.data).toEqual({ me: { id: 'alice', email: 'a@x' } });
  });

  it('never shares a flight between a narrowed document and the same text sent as is, whose result must stay untouched', async () => {
    const narrowed = request(ME, 'alice');
    new OperationState(narrowed.context as GatewayContext, false).replaceDocument(narrowed.document, narrowed.queryHash);
    const plain = request(ME, 'alice');
    expect(plain.queryHash).toBe(narrowed.queryHash);
    const results = [executor(plain), executor(narrowed)];
    expect(calls).toHaveLength(2);
    calls.forEach((call, i) => call.resolve({ data: { me: { id: `run-${i}` } } }));
    expect((await Promise.all(results)).map((r) => r.data)).toEqual([{ me: { id: 'run-0' } }, { me: { id: 'run-1' } }]);
  });

  it("never gives one user another's result for data that is not public", async () => {
    const results = [executor(request(ME, 'alice')), executor(request(ME, 'bob')), executor(request(ME, 'alice', ['admin'])), executor(request(ME, null))];
    expect(calls).toHaveLength(4);
    calls.forEach((call, i) => call.resolve({ data: { me: { id: `caller-${i}` } } }));
    expect((await Promise.all(results)).map((r) => r.data)).toEqual([0, 1, 2, 3].map((i) => ({ me: { id: `caller-${i}` } })));
  });

  it('shares a public query between every caller, anonymous ones included, with its cache hint', async () => {
    const first = request(MODELS, 'alice', ['admin']);
    const anonymous = request(MODELS, null);
    const results = [executor(first), executor(request(MODELS, 'bob')), executor(anonymous)];
    expect(calls).toHaveLength(1);
    first.overallCachePolicy.restrict({ maxAge: 5 });
    calls[0].resolve({ data: { models: [{ id: 'm' }] } });
    expect((await Promise.all(results)).map((r) => r.data)).toEqual([{ models: [{ id: 'm' }] }, { models: [{ id: 'm' }] }, { models: [{ id: 'm' }] }]);
    expect(anonymous.overallCachePolicy.maxAge).toBe(5);
  });

  it('keeps queries with other variables apart, and never shares a mutation', async () => {
    const query = 'query M($id: ID!) { model(id: $id) { id } }';
    void executor(request(query, 'a', [], { id: '1' }));
    void executor(request(query, 'a', [], { id: '2' }));
    void executor(request('mutation { logout }', 'a'));
    void executor(request('mutation { logout }', 'a'));
    expect(calls).toHaveLength(4);
    calls.forEach((call) => call.resolve({ data: {} }));
  });

  it('shares a failure, and executes again once the shared execution is over', async () => {
    const results = [executor(request(MODELS, 'a')), executor(request(MODELS, 'b'))];
    calls[0].reject(new Error('planner broke'));
    await expect(Promise.all(results)).rejects.toThrow('planner broke');
    await expect(results[1]).rejects.toThrow('planner broke');
    const again = executor(request(MODELS, 'a'));
    expect(calls).toHaveLength(2);
    calls[1].resolve({ data: { models: [] } });
    expect((await again).data).toEqual({ models: [] });
  });
});

describe('dedupSettingsFromEnv', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('is on by default with the public model catalogue, and can be switched off', () => {
    delete process.env.GATEWAY_DEDUP;
    delete process.env.GATEWAY_DEDUP_PUBLIC_FIELDS;
    expect(dedupSettingsFromEnv(new Env())).toEqual({ enabled: true, publicFields: new Set(['Query.models', 'Query.model']) });
    process.env.GATEWAY_DEDUP = 'false';
    process.env.GATEWAY_DEDUP_PUBLIC_FIELDS = 'Query.models';
    expect(dedupSettingsFromEnv(new Env())).toEqual({ enabled: false, publicFields: new Set(['Query.models']) });
  });

  it('refuses a value that is not a boolean, naming the variable', () => {
    process.env.GATEWAY_DEDUP = 'sometimes';
    expect(() => dedupSettingsFromEnv(new Env())).toThrow('GATEWAY_DEDUP expects true or false, but got "sometimes"');
  });
});
