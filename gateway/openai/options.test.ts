import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, Env } from '../../lib/config';
import { MANIFEST_FORMAT } from '../persisted-queries/safelist';
import { gatewayConfigFromEnv } from '../config';
import { OPENAI_OPERATIONS } from './operations';
import { openAiFromEnv } from './options';

it('serves /v1 by default with 15 s keep-alives, and not at all when GATEWAY_OPENAI is false', () => {
  expect(openAiFromEnv(new Env({}))).toEqual({ keepAliveMs: 15_000 });
  expect(openAiFromEnv(new Env({ GATEWAY_OPENAI_KEEPALIVE_MS: '500' }))).toEqual({ keepAliveMs: 500 });
  expect(openAiFromEnv(new Env({ GATEWAY_OPENAI: 'false' }))).toBeUndefined();
  expect(() => openAiFromEnv(new Env({ GATEWAY_OPENAI_KEEPALIVE_MS: '10' }))).toThrow(new ConfigError('GATEWAY_OPENAI_KEEPALIVE_MS expects an integer between 100 and 9007199254740991, but got "10"'));
});

it("lists the door's operations in the safelist only while the door is on", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-openai-manifest-'));
  const manifest = path.join(dir, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ format: MANIFEST_FORMAT, version: 1, operations: [{ id: 'models', body: '{ models { id } }', name: 'Models', type: 'query' }] }));
  const on = gatewayConfigFromEnv({ GATEWAY_SAFELIST: 'true', GATEWAY_SAFELIST_FILE: manifest }).safelist!;
  const off = gatewayConfigFromEnv({ GATEWAY_SAFELIST: 'true', GATEWAY_SAFELIST_FILE: manifest, GATEWAY_OPENAI: 'false' }).safelist!;
  rmSync(dir, { recursive: true, force: true });
  expect(on.size).toBe(off.size + OPENAI_OPERATIONS.length);
  for (const operation of OPENAI_OPERATIONS) {
    expect(on.resolve({ query: operation.body })).toBe(operation.body);
    expect(off.resolve({ query: operation.body })).toMatchObject({ extensions: { code: 'PERSISTED_QUERY_NOT_IN_SAFELIST' } });
  }
});
