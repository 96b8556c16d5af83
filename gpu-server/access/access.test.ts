/**
 * Access control as Triton does it, on real gpu-servers at port 0: restricted
 * categories over HTTP and gRPC (header names, refusal statuses and messages
 * as Triton's), the model control modes (none refuses load/unload, explicit
 * allows them, poll reloads what changed on disk), the metrics token, and the
 * flags and variables that configure them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ConfigError } from '../../lib/config';
import { createLogger } from '../../lib/log';
import { TritonClient } from '../../subgraphs/inference/gpu-tier/triton-client';
import { startGpuServer, type GpuServer } from '../server';
import { addEmbedVariant, makeEmbedRepository } from '../testing/temp-repository';
import { accessOptions } from './options';

const MODEL = 'embed-a';
const KEY = 'sluice-key=s3cret-value';
const ALL_BUT_HEALTH = 'metadata,inference,shared-memory,model-config,model-repository,statistics,trace,logging';
const logger = createLogger({ test: 'gpu-server-access' });

let repository: string;
const servers: GpuServer[] = [];
const clients: TritonClient[] = [];

async function start(argv: string[], env: Record<string, string> = {}): Promise<GpuServer> {
  const server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger, ...accessOptions(argv, env) });
  servers.push(server);
  return server;
}

function client(server: GpuServer, key?: string): TritonClient {
  const c = new TritonClient(`127.0.0.1:${server.grpcPort}`, 10_000, key ?? '');
  clients.push(c);
  return c;
}

async function grpcError(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('the call was expected to fail but succeeded');
}

beforeAll(async () => {
  repository = await makeEmbedRepository([{ name: MODEL }]);
}, 120_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
  fs.rmSync(repository, { recursive: true, force: true });
});

describe('restricted categories (every category but health behind one key)', () => {
  let server: GpuServer;
  beforeAll(async () => {
    server = await start([`--grpc-restricted-protocol=${ALL_BUT_HEALTH}:${KEY}`, `--http-restricted-api=${ALL_BUT_HEALTH}:${KEY}`, '--model-control-mode=explicit']);
  }, 60_000);

  it("HTTP: 403 with Triton's message without the header or with a wrong value; health stays open; the right header passes", async () => {
    const base = `http://127.0.0.1:${server.httpPort}`;
    for (const headers of [{}, { 'sluice-key': 'wrong' }, { 'sluice-key': 's3cret-valuE' }] as Record<string, string>[]) {
      const refused = await fetch(`${base}/v2/repository/models/${MODEL}/unload`, { method: 'POST', headers });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ error: "This API is restricted, expecting header 'sluice-key'" });
    }
    expect((await fetch(`${base}/v2/models/${MODEL}`)).status).toBe(403);
    expect((await fetch(`${base}/v2/models/${MODEL}/infer`, { method: 'POST', body: '{}' })).status).toBe(403);
    expect((await fetch(`${base}/v2/health/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/${MODEL}/ready`)).status).toBe(200);
    expect((await fetch(`${base}/v2/models/${MODEL}`, { headers: { 'sluice-key': 's3cret-value' } })).status).toBe(200);
  });

  it("gRPC: UNAVAILABLE with Triton's message without the metadata; health stays open; the key passes, and the model was never unloaded", async () => {
    const anonymous = client(server);
    for (const attempt of [anonymous.repositoryModelUnload(MODEL), anonymous.modelConfig(MODEL), anonymous.repositoryIndex()]) {
      const error = await grpcError(attempt);
      expect(error.code).toBe(grpc.status.UNAVAILABLE);
      expect(error.details).toBe("This protocol is restricted, expecting header 'triton-grpc-protocol-sluice-key'");
    }
    const stream = anonymous.modelStreamInfer();
    const streamError = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    expect(streamError.details).toBe("This protocol is restricted, expecting header 'triton-grpc-protocol-sluice-key'");
    expect(await grpcError(client(server, 'sluice-key=guess').modelConfig(MODEL))).toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(await anonymous.serverReady()).toEqual({ ready: true });
    expect(await anonymous.modelReady(MODEL)).toEqual({ ready: true });
    const keyed = client(server, KEY);
    expect((await keyed.repositoryIndex()).models).toContainEqual(expect.objectContaining({ name: MODEL, state: 'READY' }));
  });
});

describe('model control modes', () => {
  it("none (the default, as Triton): load and unload refused over HTTP (503) and gRPC (UNAVAILABLE) with Triton's message; the model stays ready", async () => {
    const server = await start([]);
    const message = 'explicit model load / unload is not allowed if polling is enabled';
    const http = await fetch(`http://127.0.0.1:${server.httpPort}/v2/repository/models/${MODEL}/unload`, { method: 'POST' });
    expect(http.status).toBe(503);
    expect(await http.json()).toEqual({ error: message });
    const c = client(server);
    expect(await grpcError(c.repositoryModelUnload(MODEL))).toMatchObject({ code: grpc.status.UNAVAILABLE, details: message });
    expect(await grpcError(c.repositoryModelLoad(MODEL))).toMatchObject({ code: grpc.status.UNAVAILABLE, details: message });
    expect(await c.modelReady(MODEL)).toEqual({ ready: true });
  }, 60_000);

  it('explicit: unload and load work', async () => {
    const server = await start(['--model-control-mode=explicit']);
    const c = client(server);
    await c.repositoryModelUnload(MODEL);
    expect(await c.modelReady(MODEL)).toEqual({ ready: false });
    await c.repositoryModelLoad(MODEL);
    expect(await c.modelReady(MODEL)).toEqual({ ready: true });
  }, 60_000);

  it('poll: a new model directory is loaded, a removed one unloaded, explicit control refused', async () => {
    const server = await start([], { GPU_SERVER_MODEL_CONTROL_MODE: 'poll', GPU_SERVER_REPOSITORY_POLL_SECS: '1' });
    const c = client(server);
    expect(await grpcError(c.repositoryModelLoad(MODEL))).toMatchObject({ code: grpc.status.UNAVAILABLE });
    addEmbedVariant(repository, { name: 'embed-new' });
    try {
      await waitFor(async () => (await c.modelReady('embed-new')).ready);
    } finally {
      fs.rmSync(path.join(repository, 'embed-new'), { recursive: true, force: true });
    }
    await waitFor(async () => !(await c.modelReady('embed-new')).ready);
    expect(await c.modelReady(MODEL)).toEqual({ ready: true });
  }, 60_000);
});

it('metrics: 401 without the bearer token, 200 with it', async () => {
  const server = await start([], { GPU_SERVER_METRICS_TOKEN: 'scrape-me' });
  const url = `http://127.0.0.1:${server.metricsPort}/metrics`;
  const refused = await fetch(url);
  expect(refused.status).toBe(401);
  expect(refused.headers.get('www-authenticate')).toBe('Bearer');
  expect((await fetch(url, { headers: { authorization: 'Bearer scrape-mE' } })).status).toBe(401);
  expect((await fetch(url, { headers: { authorization: 'Bearer scrape-me' } })).status).toBe(200);
}, 60_000);

describe('accessOptions', () => {
  it("reads Triton's flags (repeatable groups) over the variables, and refuses what Triton would", () => {
    const options = accessOptions(['--grpc-restricted-protocol=inference:a=1', '--grpc-restricted-protocol=model-repository,statistics:b=2', '--model-control-mode=EXPLICIT'], {
      GPU_SERVER_MODEL_CONTROL_MODE: 'poll',
      GPU_SERVER_HTTP_RESTRICTED_API: 'metadata:c=3;health:D=4',
    });
    expect(options.modelControlMode).toBe('explicit');
    expect([...options.grpcRestrictions].map(([category, r]) => [category, r.header])).toEqual([
      ['inference', 'triton-grpc-protocol-a'],
      ['model-repository', 'triton-grpc-protocol-b'],
      ['statistics', 'triton-grpc-protocol-b'],
    ]);
    expect(options.httpRestrictions.get('health')?.header).toBe('d');
    expect(options.httpRestrictions.get('health')?.matches('4')).toBe(true);
    expect(() => accessOptions(['--grpc-restricted-protocol=inference:a=1', '--grpc-restricted-protocol=inference:b=2'])).toThrow("category 'inference' is in more than one group");
    expect(() => accessOptions(['--http-restricted-api=inferences:a=1'])).toThrow('unknown category "inferences"');
    expect(() => accessOptions(['--http-restricted-api=inference:a='])).toThrow(ConfigError);
    expect(() => accessOptions(['--model-control-mode=manual'])).toThrow('--model-control-mode (GPU_SERVER_MODEL_CONTROL_MODE) expects none, explicit or poll, but got "manual"');
    expect(() => accessOptions(['--strict-readiness=true'])).toThrow('unknown argument "--strict-readiness=true"');
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
