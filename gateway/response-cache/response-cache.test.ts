/**
 * The response cache plugin on an Apollo Server over a local schema with
 * `@cacheControl` hints (Apollo's cache-control plugin computes the policy
 * the same way the gateway folds it from subgraph headers), with its entries
 * in ioredis-mock.
 */
import { ApolloServer } from '@apollo/server';
import type Redis from 'ioredis';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import type { GatewayContext, SignedIdentity } from '../auth/context';
import { apolloPlugin } from '../pipeline/apollo-adapter';
import { GatewayPipeline } from '../pipeline/pipeline';
import { responseCache } from './feature';

const responseCachePlugin = (...args: Parameters<typeof responseCache>) => apolloPlugin(new GatewayPipeline([responseCache(...args)]));
import { ResponseCacheStore } from './store';

const typeDefs = `
  directive @cacheControl(maxAge: Int, scope: CacheControlScope, inheritMaxAge: Boolean) on FIELD_DEFINITION | OBJECT | INTERFACE | UNION
  enum CacheControlScope { PUBLIC PRIVATE }
  type Query {
    catalog(page: Int): [Item!]! @cacheControl(maxAge: 30)
    me: Viewer @cacheControl(maxAge: 10, scope: PRIVATE)
    live: Int
    broken: Item @cacheControl(maxAge: 30)
  }
  type Item @cacheControl(maxAge: 30) { id: ID! }
  type Viewer { id: ID! secret: String! }
  type Mutation { touch: Int @cacheControl(maxAge: 30) }
`;

let redis: Redis;
let calls: Record<string, number>;
let server: ApolloServer<GatewayContext>;
let prefix: string;

function contextFor(sub: string | null): GatewayContext {
  return { identity: { claims: { sub, scopes: [] } } as unknown as SignedIdentity, requestId: 'test' };
}

async function run(query: string, sub: string | null = null, variables?: Record<string, unknown>) {
  const response = await server.executeOperation({ query, variables }, { contextValue: contextFor(sub) });
  if (response.body.kind !== 'single') throw new Error('expected a single result');
  return { status: response.http.headers.get('x-cache'), age: response.http.headers.get('age'), cacheControl: response.http.headers.get('cache-control'), ...response.body.singleResult };
}

beforeEach(async () => {
  redis = connectRedis('memory://', createLogger());
  calls = {};
  prefix = `gw:rc:${Math.random().toString(36).slice(2)}:`;
  const count = (name: string) => {
    calls[name] = (calls[name] ?? 0) + 1;
    return calls[name];
  };
  server = new ApolloServer<GatewayContext>({
    typeDefs,
    resolvers: {
      Query: {
        catalog: (_: unknown, { page }: { page?: number }) => {
          count('catalog');
          return [{ id: `item-${page ?? 0}` }];
        },
        me: (_: unknown, __: unknown, context: GatewayContext) => {
          count('me');
          return context.identity.claims.sub ? { id: context.identity.claims.sub, secret: `secret of ${context.identity.claims.sub}` } : null;
        },
        live: () => count('live'),
        broken: () => {
          count('broken');
          throw new Error('the item store is down');
        },
      },
      Mutation: { touch: () => count('touch') },
    },
    plugins: [responseCachePlugin(new ResponseCacheStore(redis, undefined, prefix), { maxEntryBytes: 64 * 1024 })],
  });
  await server.start();
});

afterEach(async () => {
  await server.stop();
  redis.disconnect();
});

describe('public responses', () => {
  it('are stored for their max-age and served to everyone, without executing again', async () => {
    const first = await run('{ catalog { id } }', 'alice');
    expect(first).toMatchObject({ status: 'MISS', data: { catalog: [{ id: 'item-0' }] }, cacheControl: 'max-age=30, public' });
    const second = await run('{ catalog { id } }', 'bob');
    const third = await run('{ catalog { id } }', null);
    expect([second, third]).toEqual([expect.objectContaining({ status: 'HIT', data: first.data, age: '0' }), expect.objectContaining({ status: 'HIT', data: first.data })]);
    expect(second.cacheControl).toMatch(/^max-age=(29|30), public$/);
    expect(calls.catalog).toBe(1);
    const [key] = await redis.keys(`${prefix}*`);
    expect(await redis.pttl(key)).toBeGreaterThan(29_000);
  });

  it('are kept apart by variables and by operation name', async () => {
    await run('query Page($p: Int) { catalog(page: $p) { id } }', null, { p: 1 });
    const other = await run('query Page($p: Int) { catalog(page: $p) { id } }', null, { p: 2 });
    expect(other).toMatchObject({ status: 'MISS', data: { catalog: [{ id: 'item-2' }] } });
    const again = await run('query Page($p: Int) { catalog(page: $p) { id } }', null, { p: 1 });
    expect(again).toMatchObject({ status: 'HIT', data: { catalog: [{ id: 'item-1' }] } });
    expect(calls.catalog).toBe(2);
  });
});

describe('private responses', () => {
  it('are served only to the user they were made for', async () => {
    expect(await run('{ me { id secret } }', 'alice')).toMatchObject({ status: 'MISS', data: { me: { id: 'alice', secret: 'secret of alice' } }, cacheControl: 'max-age=10, private' });
    expect(await run('{ me { id secret } }', 'bob')).toMatchObject({ status: 'MISS', data: { me: { id: 'bob', secret: 'secret of bob' } } });
    expect(await run('{ me { id secret } }', 'alice')).toMatchObject({ status: 'HIT', data: { me: { id: 'alice', secret: 'secret of alice' } } });
    expect(await run('{ me { id secret } }', 'bob')).toMatchObject({ status: 'HIT', data: { me: { id: 'bob', secret: 'secret of bob' } } });
    expect(await run('{ me { id secret } }', null)).toMatchObject({ status: 'MISS', data: { me: null } });
    expect(calls.me).toBe(3);
  });

  it('are not stored for an anonymous caller, who has no key of their own', async () => {
    await run('{ me { id } }', null);
    expect(await run('{ me { id } }', null)).toMatchObject({ status: 'MISS', data: { me: null } });
    expect(calls.me).toBe(2);
    expect(await redis.keys(`${prefix}*`)).toEqual([]);
  });
});

describe('never stored', () => {
  it('a response with an error, even with data', async () => {
    const first = await run('{ catalog { id } broken { id } }');
    expect(first.errors?.[0].message).toBe('the item store is down');
    expect(await run('{ catalog { id } broken { id } }')).toMatchObject({ status: 'MISS', errors: [expect.objectContaining({ message: 'the item store is down' })] });
    expect(calls.broken).toBe(2);
  });

  it('a mutation, which bypasses the cache', async () => {
    expect(await run('mutation { touch }')).toMatchObject({ status: 'BYPASS', data: { touch: 1 } });
    expect(await run('mutation { touch }')).toMatchObject({ status: 'BYPASS', data: { touch: 2 } });
  });

  it('a query without a max-age (a root field without a hint), whose next look-ups are skipped', async () => {
    expect(await run('{ live }')).toMatchObject({ status: 'MISS', data: { live: 1 }, cacheControl: 'no-store' });
    expect(await run('{ live }')).toMatchObject({ status: 'BYPASS', data: { live: 2 }, cacheControl: 'no-store' });
  });

  it('a query refused before execution, which bypasses it', async () => {
    expect(await run('{ nothing }')).toMatchObject({ status: 'BYPASS', errors: [expect.objectContaining({ extensions: expect.objectContaining({ code: 'GRAPHQL_VALIDATION_FAILED' }) })] });
  });

  it('a response larger than the entry limit', async () => {
    await server.stop();
    server = new ApolloServer<GatewayContext>({
      typeDefs,
      resolvers: {
        Query: {
          catalog: () => {
            calls.catalog = (calls.catalog ?? 0) + 1;
            return Array.from({ length: 100 }, (_, i) => ({ id: `item-${i}` }));
          },
        },
      },
      plugins: [responseCachePlugin(new ResponseCacheStore(redis, undefined, prefix), { maxEntryBytes: 1024 })],
    });
    await server.start();
    await run('{ catalog { id } }');
    expect(await run('{ catalog { id } }')).toMatchObject({ status: 'MISS' });
    expect(calls.catalog).toBe(2);
  });
});

it('answers from execution when Redis fails, and reports the failure', async () => {
  const failures: string[] = [];
  const failing = {
    get: () => Promise.reject(new Error('connection lost')),
    set: () => Promise.reject(new Error('connection lost')),
    mget: () => Promise.reject(new Error('connection lost')),
  } as unknown as Redis;
  await server.stop();
  server = new ApolloServer<GatewayContext>({
    typeDefs,
    resolvers: { Query: { catalog: () => [{ id: 'item-0' }] } },
    plugins: [responseCachePlugin(new ResponseCacheStore(failing, (operation, error) => failures.push(`${operation}: ${error.message}`), prefix), { maxEntryBytes: 64 * 1024 })],
  });
  await server.start();
  expect(await run('{ catalog { id } }', 'alice')).toMatchObject({ status: 'MISS', data: { catalog: [{ id: 'item-0' }] } });
  expect(failures).toEqual(['lookup: connection lost', 'save: connection lost']);
});
