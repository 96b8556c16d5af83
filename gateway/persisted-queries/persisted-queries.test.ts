import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, Env } from '../../lib/config';
import { createLogger } from '../../lib/log';
import { connectRedis } from '../../lib/redis';
import { RedisKeyValueCache } from '../../lib/redis-key-value-cache';
import { refuseHttpSource } from '../pipeline/http-source';
import { GatewayPipeline } from '../pipeline/pipeline';
import { RememberedDocuments } from './apq';
import { safelistFeature } from './feature';
import { MANIFEST_FORMAT, parseManifest, Safelist, safelistFromEnv, type ManifestOperation } from './safelist';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const ME = 'query Me {\n  me {\n    id\n  }\n}';
const MODELS = 'query Models { models { id } }';
const operations: ManifestOperation[] = [
  { id: sha256(ME), body: ME, name: 'Me', type: 'query' },
  { id: 'models-v1', body: MODELS, name: 'Models', type: 'query' },
];
const manifest = (ops: unknown[] = operations) => JSON.stringify({ format: MANIFEST_FORMAT, version: 1, operations: ops });
const byId = (id: string) => ({ extensions: { persistedQuery: { version: 1, sha256Hash: id } } });

describe('Safelist.resolve', () => {
  const safelist = new Safelist(operations);

  it('runs a registered document, as sent or with other whitespace and comments', () => {
    expect(safelist.resolve({ query: ME })).toBe(ME);
    expect(safelist.resolve({ query: 'query Me { me { id } } # from the app' })).toBe('query Me { me { id } } # from the app');
  });

  it('stands a registered id for its document', () => {
    expect(safelist.resolve(byId(sha256(ME)))).toBe(ME);
    expect(safelist.resolve(byId('models-v1'))).toBe(MODELS);
  });

  it('refuses an unregistered document or id with PERSISTED_QUERY_NOT_IN_SAFELIST, saying what was expected and got', () => {
    const document = safelist.resolve({ query: '{ me { id email } }' });
    expect(document).toMatchObject({
      message:
        'the operation is not in the safelist: this gateway runs only the operations of its persisted query manifest; expected a registered id in extensions.persistedQuery.sha256Hash or a registered document in "query", but got an unregistered document',
      extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST' },
    });
    const id = safelist.resolve(byId('f00'));
    expect(id).toMatchObject({ message: expect.stringMatching(/but got the unregistered id "f00"$/), extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST', id: 'f00' } });
  });

  it('judges an unregistered document by itself even when it claims a registered id', () => {
    expect(safelist.resolve({ query: '{ me { email } }', ...byId('models-v1') })).toMatchObject({ extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST', id: 'models-v1' } });
  });

  it('refuses a document that does not even lex, and leaves a request with neither document nor id to Apollo Server', () => {
    expect(safelist.resolve({ query: '{ "unterminated' })).toMatchObject({ extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST' } });
    expect(safelist.resolve({})).toBeUndefined();
  });
});

describe('parseManifest', () => {
  it("reads Apollo's manifest format", () => {
    expect(parseManifest(manifest(), 'm.json')).toEqual(operations);
  });

  it('names the file and what is wrong in it', () => {
    expect(() => parseManifest('{', 'm.json')).toThrow(/^m\.json is not a persisted query manifest: expected JSON, but got a parse error/);
    expect(() => parseManifest(JSON.stringify({ format: 'other', version: 1, operations: [] }), 'm.json')).toThrow(
      'm.json is not a persisted query manifest: expected {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [...]}, but got format "other", version 1',
    );
    expect(() =>
      parseManifest(
        manifest([
          { id: 'x', body: '{ me { id } }', name: 'X', type: 'query' },
          { id: 'y', body: '', name: 'Y', type: 'query' },
        ]),
        'm.json',
      ),
    ).toThrow(/^m\.json: operations\[1\] expects \{id, body, name, type: "query" \| "mutation" \| "subscription"\}, but got /);
    expect(() => parseManifest(manifest([operations[0], { ...operations[0], body: MODELS }]), 'm.json')).toThrow(`m.json: operations[1] reuses the id "${sha256(ME)}" for a different body`);
  });
});

describe('safelistFromEnv', () => {
  const saved = { ...process.env };
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'sluice-safelist-'))));
  afterEach(() => {
    process.env = { ...saved };
    rmSync(dir, { recursive: true, force: true });
  });

  it('is off by default, and reads the manifest file when on', () => {
    expect(safelistFromEnv(new Env())).toBeUndefined();
    const file = path.join(dir, 'manifest.json');
    writeFileSync(file, manifest());
    Object.assign(process.env, { GATEWAY_SAFELIST: 'true', GATEWAY_SAFELIST_FILE: file });
    expect(safelistFromEnv(new Env())?.size).toBe(2);
  });

  it('refuses to start without a readable manifest', () => {
    process.env.GATEWAY_SAFELIST = 'true';
    expect(() => safelistFromEnv(new Env())).toThrow(new ConfigError('GATEWAY_SAFELIST=true expects GATEWAY_SAFELIST_FILE to name a persisted query manifest, but it is not set'));
    process.env.GATEWAY_SAFELIST_FILE = path.join(dir, 'missing.json');
    expect(() => safelistFromEnv(new Env())).toThrow(/^GATEWAY_SAFELIST_FILE names .*missing\.json, which cannot be read: ENOENT/);
  });
});

describe('the safelist on HTTP, in the source stage', () => {
  const pipeline = new GatewayPipeline([safelistFeature(new Safelist(operations))]);
  const refuseUnlisted = (req: IncomingMessage, res: ServerResponse, body: unknown) => refuseHttpSource(pipeline, req, res, body);
  function fakeResponse() {
    const sent: { status?: number; body?: unknown } = {};
    const res = {
      writeHead: (status: number) => {
        sent.status = status;
        return res;
      },
      end: (text: string) => {
        sent.body = JSON.parse(text);
      },
    } as unknown as ServerResponse;
    return { res, sent };
  }

  it('answers 400 for an unregistered POST and lets a registered one through', () => {
    const { res, sent } = fakeResponse();
    expect(refuseUnlisted({ method: 'POST' } as IncomingMessage, res, { query: '{ me { email } }' })).toBe(true);
    expect(sent).toMatchObject({ status: 400, body: { errors: [{ extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST' } }] } });
    expect(refuseUnlisted({ method: 'POST' } as IncomingMessage, fakeResponse().res, { query: ME })).toBe(false);
  });

  it('puts the registered document into a POST body sent by id, without the persistedQuery extension', () => {
    const body = { ...byId('models-v1'), operationName: 'Models' } as Record<string, unknown>;
    (body.extensions as Record<string, unknown>).clientLibrary = 'test';
    expect(refuseUnlisted({ method: 'POST' } as IncomingMessage, fakeResponse().res, body)).toBe(false);
    expect(body).toEqual({ query: MODELS, operationName: 'Models', extensions: { clientLibrary: 'test' } });
    const bare: Record<string, unknown> = byId(sha256(ME));
    refuseUnlisted({ method: 'POST' } as IncomingMessage, fakeResponse().res, bare);
    expect(bare).toStrictEqual({ query: ME });
  });

  it('rewrites the URL of a GET sent by id to carry the document', () => {
    const req = { method: 'GET', url: `/graphql?extensions=${encodeURIComponent(JSON.stringify(byId('models-v1').extensions))}&operationName=Models` } as IncomingMessage;
    expect(refuseUnlisted(req, fakeResponse().res, undefined)).toBe(false);
    const url = new URL(req.url!, 'http://localhost');
    expect([url.pathname, url.searchParams.get('query'), url.searchParams.get('extensions'), url.searchParams.get('operationName')]).toEqual(['/graphql', MODELS, null, 'Models']);
    const unlisted = fakeResponse();
    expect(refuseUnlisted({ method: 'GET', url: `/graphql?query=${encodeURIComponent('{ me { email } }')}` } as IncomingMessage, unlisted.res, undefined)).toBe(true);
    expect(unlisted.sent.status).toBe(400);
  });

  it('leaves a GET without an operation (the Sandbox page) alone', () => {
    expect(refuseUnlisted({ method: 'GET', url: '/graphql' } as IncomingMessage, fakeResponse().res, undefined)).toBe(false);
  });
});

describe('RedisKeyValueCache', () => {
  it('keeps values under its prefix, for their TTL in seconds', async () => {
    const redis = connectRedis('memory://', createLogger());
    const prefix = `test:${Math.random().toString(36).slice(2)}:`;
    const cache = new RedisKeyValueCache(redis, prefix);
    await cache.set('apq:abc', '{ me { id } }', { ttl: 60 });
    await cache.set('forever', 'x');
    expect(await redis.get(`${prefix}apq:abc`)).toBe('{ me { id } }');
    expect(await redis.pttl(`${prefix}apq:abc`)).toBeGreaterThan(59_000);
    expect(await redis.pttl(`${prefix}forever`)).toBe(-1);
    expect(await cache.get('apq:abc')).toBe('{ me { id } }');
    expect(await cache.delete('apq:abc')).toBe(true);
    expect(await cache.get('apq:abc')).toBeUndefined();
    redis.disconnect();
  });

  it('misses and drops writes, reporting them, when Redis fails', async () => {
    const errors: string[] = [];
    const failing = { get: () => Promise.reject(new Error('down')), set: () => Promise.reject(new Error('down')), del: () => Promise.reject(new Error('down')) };
    const cache = new RedisKeyValueCache(failing as never, 'gw:', (operation, error) => errors.push(`${operation}: ${error.message}`));
    expect(await cache.get('k')).toBeUndefined();
    await cache.set('k', 'v');
    expect(await cache.delete('k')).toBe(false);
    expect(errors).toEqual(['get: down', 'set: down', 'delete: down']);
  });
});

describe('RememberedDocuments', () => {
  const setUp = () => {
    const redis = connectRedis('memory://', createLogger());
    const prefix = `test:${Math.random().toString(36).slice(2)}:`;
    let clock = 0;
    const cache = new RememberedDocuments(new RedisKeyValueCache(redis, prefix), 60_000, () => clock);
    return { redis, prefix, cache, advance: (ms: number) => (clock += ms) };
  };

  it('writes registrations through to Redis and answers what it registered or read without asking Redis again, until its TTL', async () => {
    const { redis, prefix, cache, advance } = setUp();
    await cache.set('apq:abc', '{ me { id } }', { ttl: 60 });
    expect(await redis.get(`${prefix}apq:abc`)).toBe('{ me { id } }');
    await redis.set(`${prefix}apq:other`, '{ models { id } }');
    expect(await cache.get('apq:other')).toBe('{ models { id } }');
    await redis.del(`${prefix}apq:abc`, `${prefix}apq:other`);
    expect([await cache.get('apq:abc'), await cache.get('apq:other')]).toEqual(['{ me { id } }', '{ models { id } }']);
    advance(60_000);
    expect([await cache.get('apq:abc'), await cache.get('apq:other')]).toEqual([undefined, undefined]);
    redis.disconnect();
  });

  it('remembers no miss and no document over 16 KiB', async () => {
    const { redis, prefix, cache } = setUp();
    expect(await cache.get('apq:late')).toBeUndefined();
    await redis.set(`${prefix}apq:late`, '{ me { id } }');
    expect(await cache.get('apq:late')).toBe('{ me { id } }');
    const large = `{ me { id } } # ${'x'.repeat(16 * 1024)}`;
    await cache.set('apq:large', large);
    await redis.del(`${prefix}apq:large`);
    expect(await cache.get('apq:large')).toBeUndefined();
    redis.disconnect();
  });
});
