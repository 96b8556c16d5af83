/**
 * The gpu-server end to end: a real server on free ports, a plain
 * @grpc/grpc-js client built from the same protos, and a repository holding
 * the real sluice-embed model, variants of it with other configs (another
 * tokenizer on two "GPU" instances, a one-request queue, one to unload), and
 * two broken models.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../lib/log';
import { loadTritonProto } from '../protocol/triton/loader';
import { encodeBytesTensor } from '../protocol/triton/bytes-tensor';
import type { ModelInferResponse__Output as ModelInferResponse, ModelStatistics__Output as ModelStatistics } from '../protocol/triton/messages';
import { addEmbedVariant, PROJECT_REPOSITORY } from './testing/temp-repository';
import { startGpuServer, type GpuServer } from './server';
import { call, callError, tritonTestClient, type TritonTestClient } from './testing/test-client';

const MODEL = 'sluice-embed';
const DIM = 128;

let repository: string;
let server: GpuServer;
let client: TritonTestClient;
let health: grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function embedRequest(texts: string[], extra: Record<string, unknown> = {}) {
  return {
    model_name: MODEL as string,
    inputs: [{ name: 'text', datatype: 'BYTES', shape: [texts.length, 1] }],
    raw_input_contents: [encodeBytesTensor(texts)],
    ...extra,
  };
}

function vectors(response: ModelInferResponse): Float32Array[] {
  const raw = response.raw_output_contents[0];
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const rows: Float32Array[] = [];
  for (let i = 0; i < all.length; i += DIM) rows.push(all.subarray(i, i + DIM));
  return rows;
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, i) => sum + x * b[i], 0);

function httpStatus(port: number, urlPath: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

async function embedStats(): Promise<ModelStatistics> {
  const response = await call<{ model_stats: ModelStatistics[] }>(client, 'ModelStatistics', { name: MODEL });
  return response.model_stats[0];
}

beforeAll(async () => {
  repository = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-gpu-server-'));
  const source = path.join(__dirname, 'model_repository', MODEL, 'config.pbtxt');
  fs.mkdirSync(path.join(repository, MODEL, '1'), { recursive: true });
  fs.copyFileSync(source, path.join(repository, MODEL, 'config.pbtxt'));
  fs.copyFileSync(path.join(PROJECT_REPOSITORY, MODEL, '1', 'model.onnx'), path.join(repository, MODEL, '1', 'model.onnx'));
  addEmbedVariant(repository, {
    name: 'embed-b',
    maxBatchSize: 8,
    dynamicBatching: 'max_queue_delay_microseconds: 500',
    instanceGroup: '{ count: 1 kind: KIND_GPU gpus: [ 0, 1 ] }',
    parameters: { tokenizer: 'cl100k_base' },
  });
  addEmbedVariant(repository, { name: 'queue-1', maxBatchSize: 1, dynamicBatching: 'default_queue_policy { max_queue_size: 1 }' });
  addEmbedVariant(repository, { name: 'unload-me', maxBatchSize: 1 });
  // A config with a syntax error on line 3, and a model without versions.
  fs.mkdirSync(path.join(repository, 'broken', '1'), { recursive: true });
  fs.writeFileSync(path.join(repository, 'broken', 'config.pbtxt'), 'name: "broken"\nmax_batch_size: 4\ninput [ { name: "x" data_type: TYPE_NOPE dims: [1] } ]\n');
  fs.mkdirSync(path.join(repository, 'no-versions'));
  fs.copyFileSync(source, path.join(repository, 'no-versions', 'config.pbtxt'));
  fs.writeFileSync(path.join(repository, 'no-versions', 'config.pbtxt'), fs.readFileSync(source, 'utf8').replace('name: "sluice-embed"', 'name: "no-versions"'));

  server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, modelControlMode: 'explicit', logger: createLogger({ test: 'gpu-server' }) });
  const pkg = loadTritonProto();
  client = tritonTestClient(`127.0.0.1:${server.grpcPort}`);
  health = new pkg.grpc.health.v1.Health(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure()) as unknown as typeof health;
}, 60_000);

afterAll(async () => {
  client?.close();
  health?.close();
  await server?.stop();
  fs.rmSync(repository, { recursive: true, force: true });
});

describe('health and metadata', () => {
  it('answers ServerLive, ServerReady and ServerMetadata', async () => {
    expect(await call(client, 'ServerLive', {})).toEqual({ live: true });
    expect(await call(client, 'ServerReady', {})).toEqual({ ready: true });
    expect(await call(client, 'ServerMetadata', {})).toEqual({
      name: 'sluice-gpu-server',
      version: expect.any(String),
      extensions: expect.arrayContaining(['model_repository', 'statistics']),
    });
  });

  it('answers grpc.health.v1 Check', async () => {
    expect(await call(health, 'Check', { service: '' })).toEqual({ status: 'SERVING' });
    expect(await call(health, 'Check', { service: 'inference.GRPCInferenceService' })).toEqual({ status: 'SERVING' });
    await expect(call(health, 'Check', { service: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('answers HTTP health', async () => {
    expect(await httpStatus(server.httpPort, '/v2/health/live')).toBe(200);
    expect(await httpStatus(server.httpPort, '/v2/health/ready')).toBe(200);
    expect(await httpStatus(server.httpPort, '/v2/other')).toBe(404);
  });

  it('answers ModelReady per model', async () => {
    expect(await call(client, 'ModelReady', { name: MODEL })).toEqual({ ready: true });
    expect(await call(client, 'ModelReady', { name: MODEL, version: '1' })).toEqual({ ready: true });
    expect(await call(client, 'ModelReady', { name: 'broken' })).toEqual({ ready: false });
    const error = await callError(client, 'ModelReady', { name: 'missing' });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe("Request for unknown model: 'missing' is not found");
  });

  it('answers ModelMetadata with the batch dimension', async () => {
    expect(await call(client, 'ModelMetadata', { name: MODEL })).toEqual({
      name: MODEL,
      versions: ['1'],
      platform: 'python',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1, 1] }],
      outputs: [{ name: 'embedding', datatype: 'FP32', shape: [-1, DIM] }],
    });
  });

  it('answers ModelConfig in the proto shape', async () => {
    const { config } = await call<{ config: Record<string, unknown> }>(client, 'ModelConfig', { name: MODEL });
    expect(config).toMatchObject({
      name: MODEL,
      backend: 'python',
      max_batch_size: 64,
      input: [{ name: 'text', data_type: 'TYPE_STRING', dims: [1] }],
      output: [{ name: 'embedding', data_type: 'TYPE_FP32', dims: [DIM] }],
      dynamic_batching: { max_queue_delay_microseconds: 0 },
      scheduling_choice: 'dynamic_batching',
      instance_group: [{ kind: 'KIND_CPU', count: 1 }],
    });
  });

  it('lists every model in RepositoryIndex, bad ones UNAVAILABLE with the reason', async () => {
    const { models } = await call<{ models: Array<Record<string, string>> }>(client, 'RepositoryIndex', {});
    expect(models).toEqual([
      {
        name: 'broken',
        version: '',
        state: 'UNAVAILABLE',
        reason: expect.stringMatching(/broken\/config\.pbtxt:3:32: field 'data_type' of inference\.ModelInput expects one of .*but got 'TYPE_NOPE'$/),
      },
      { name: 'embed-b', version: '1', state: 'READY', reason: '' },
      { name: 'no-versions', version: '', state: 'UNAVAILABLE', reason: expect.stringContaining('has no numbered version directory') },
      { name: 'queue-1', version: '1', state: 'READY', reason: '' },
      { name: MODEL, version: '1', state: 'READY', reason: '' },
      { name: 'unload-me', version: '1', state: 'READY', reason: '' },
    ]);
    const ready = await call<{ models: Array<Record<string, string>> }>(client, 'RepositoryIndex', { ready: true });
    expect(ready.models.map((m) => m.name)).toEqual(['embed-b', 'queue-1', MODEL, 'unload-me']);
  });

  it('answers the RPCs it does not implement with UNIMPLEMENTED and the reason', async () => {
    const error = await callError(client, 'TraceSetting', { model_name: MODEL });
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(error.details).toBe('TraceSetting is not implemented by the Sluice gpu-server: tracing is not supported');
    const cuda = await callError(client, 'CudaSharedMemoryStatus', {});
    expect(cuda.code).toBe(grpc.status.UNIMPLEMENTED);
    const logs = await callError(client, 'LogSettings', {});
    expect(logs.details).toContain('set SLUICE_LOG_LEVEL');
  });
});

describe('ModelInfer on sluice-embed', () => {
  const texts = ['The cat sat on the mat', 'Quantum computers use qubits', 'A cat was sitting on a mat'];

  it('embeds a batch: shape, unit norm, order, similar texts closer', async () => {
    const response = await call<ModelInferResponse>(client, 'ModelInfer', embedRequest(texts, { id: 'req-1' }));
    expect(response).toMatchObject({ model_name: MODEL, model_version: '1', id: 'req-1' });
    expect(response.outputs).toEqual([expect.objectContaining({ name: 'embedding', datatype: 'FP32', shape: [3, DIM] })]);
    const [cat, quantum, cat2] = vectors(response);
    for (const v of [cat, quantum, cat2]) expect(dot(v, v)).toBeCloseTo(1, 5);
    expect(dot(cat, cat2)).toBeGreaterThan(0.5);
    expect(dot(cat, quantum)).toBeLessThan(0.3);
    expect(dot(cat, cat2) - dot(cat, quantum)).toBeGreaterThan(0.3);

    // Order is preserved: each row equals the text embedded on its own.
    for (const [i, text] of texts.entries()) {
      const [single] = vectors(await call<ModelInferResponse>(client, 'ModelInfer', embedRequest([text])));
      expect(dot(single, vectors(response)[i])).toBeCloseTo(1, 5);
    }
  });

  it('reads only as much of a long text as its kept tokens can come from, so an unbroken 1 MiB run is embedded like its start', async () => {
    const run = 'a'.repeat(1 << 20);
    const [long, start] = vectors(await call<ModelInferResponse>(client, 'ModelInfer', embedRequest([run, run.slice(0, 256 * 32)])));
    expect(dot(long, start)).toBeCloseTo(1, 5);
  });

  it('accepts typed bytes_contents as well as raw contents', async () => {
    const typed = await call<ModelInferResponse>(client, 'ModelInfer', {
      model_name: MODEL,
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 1], contents: { bytes_contents: texts.slice(0, 2).map((t) => Buffer.from(t)) } }],
    });
    const raw = await call<ModelInferResponse>(client, 'ModelInfer', embedRequest(texts.slice(0, 2)));
    expect(Buffer.compare(typed.raw_output_contents[0], raw.raw_output_contents[0])).toBe(0);
  });

  it('combines concurrent requests into fewer executions and splits results back exactly', async () => {
    const before = await embedStats();
    const many = Array.from({ length: 32 }, (_, i) => `document number ${i} about topic ${i % 5}`);
    const singles = await Promise.all(many.map((t) => call<ModelInferResponse>(client, 'ModelInfer', embedRequest([t]))));
    const batched = vectors(await call<ModelInferResponse>(client, 'ModelInfer', embedRequest(many)));
    singles.forEach((response, i) => expect(dot(vectors(response)[0], batched[i])).toBeCloseTo(1, 5));
    const after = await embedStats();
    expect(after.inference_count - before.inference_count).toBe(64);
    expect(after.inference_stats!.success!.count - before.inference_stats!.success!.count).toBe(33);
    const executions = after.execution_count - before.execution_count;
    expect(executions).toBeGreaterThanOrEqual(2); // the 32-text request is one execution on its own
    expect(executions).toBeLessThan(33);
    expect(after.batch_stats.find((b) => b.batch_size === 32)).toBeDefined();
  });

  it('answers ModelStreamInfer for this non-decoupled model', async () => {
    const stream = client.makeBidiStreamRequest(
      '/inference.GRPCInferenceService/ModelStreamInfer',
      (value: unknown) => (loadTritonProto().inference.GRPCInferenceService.service.ModelStreamInfer.requestSerialize as (v: unknown) => Buffer)(value),
      (buffer: Buffer) => (loadTritonProto().inference.GRPCInferenceService.service.ModelStreamInfer.responseDeserialize as (b: Buffer) => unknown)(buffer),
    );
    const responses: Array<{ error_message: string; infer_response: ModelInferResponse | null }> = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on('data', (r: (typeof responses)[number]) => responses.push(r));
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    stream.write(embedRequest(['stream me'], { id: 's1' }));
    stream.write({ model_name: 'missing', inputs: [] });
    stream.end();
    await done;
    expect(responses).toHaveLength(2);
    const ok = responses.find((r) => r.infer_response?.id === 's1')!;
    expect(ok.error_message).toBe('');
    expect(ok.infer_response).toMatchObject({
      id: 's1',
      outputs: [expect.objectContaining({ shape: [1, DIM] })],
      parameters: { triton_final_response: expect.objectContaining({ bool_param: true }) },
    });
    expect(responses.find((r) => r.error_message)!.error_message).toBe("Request for unknown model: 'missing' is not found");
  });
});

describe('ModelInfer errors', () => {
  it('refuses an unknown model with NOT_FOUND', async () => {
    const error = await callError(client, 'ModelInfer', { ...embedRequest(['x']), model_name: 'nope' });
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe("Request for unknown model: 'nope' is not found");
  });

  it('refuses an unknown version with NOT_FOUND', async () => {
    const error = await callError(client, 'ModelInfer', embedRequest(['x'], { model_version: '7' }));
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toContain("'sluice-embed' version 7 is not found (served: 1)");
  });

  it('refuses a model that failed to load with UNAVAILABLE and the reason', async () => {
    const error = await callError(client, 'ModelInfer', { ...embedRequest(['x']), model_name: 'no-versions' });
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    expect(error.details).toContain('has no numbered version directory');
  });

  it('refuses a wrong datatype with INVALID_ARGUMENT saying expected and got', async () => {
    const error = await callError(client, 'ModelInfer', {
      model_name: MODEL,
      inputs: [{ name: 'text', datatype: 'FP32', shape: [1, 1] }],
      raw_input_contents: [Buffer.alloc(4)],
    });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe("unexpected datatype FP32 for inference input 'text' of model 'sluice-embed': expected BYTES, got FP32");
  });

  it('refuses a wrong shape with INVALID_ARGUMENT', async () => {
    const error = await callError(client, 'ModelInfer', { ...embedRequest(['a', 'b']), inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2] }] });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe("unexpected shape for input 'text' for model 'sluice-embed': expected [-1,1], got [1,2]");
  });

  it('refuses a batch over max_batch_size with INVALID_ARGUMENT', async () => {
    const error = await callError(client, 'ModelInfer', embedRequest(Array.from({ length: 65 }, (_, i) => `t${i}`)));
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe("inference request batch-size must be between 1 and 64 for model 'sluice-embed', but input 'text' has batch size 65");
  });

  it('refuses malformed raw BYTES with INVALID_ARGUMENT', async () => {
    const error = await callError(client, 'ModelInfer', { ...embedRequest(['x']), raw_input_contents: [Buffer.from([9, 0, 0, 0, 0x61])] });
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toBe("malformed BYTES data for input 'text' of model 'sluice-embed': BYTES element 0 declares 9 byte(s) at byte 0, but only 1 byte(s) remain");
  });

  it('refuses unknown inputs, missing inputs and unknown outputs', async () => {
    const unknown = await callError(client, 'ModelInfer', { ...embedRequest(['x']), inputs: [{ name: 'txt', datatype: 'BYTES', shape: [1, 1] }] });
    expect(unknown.details).toBe("unexpected inference input 'txt' for model 'sluice-embed'; expected: text");
    const missing = await callError(client, 'ModelInfer', { model_name: MODEL, inputs: [] });
    expect(missing.details).toBe("model 'sluice-embed' requires input(s) 'text', but the request is missing 'text'");
    const output = await callError(client, 'ModelInfer', embedRequest(['x'], { outputs: [{ name: 'vector' }] }));
    expect(output.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(output.details).toBe("unexpected inference output 'vector' for model 'sluice-embed'; expected: embedding");
  });

  it('counts failures only for requests that reached the model', async () => {
    const stats = await embedStats();
    expect(stats.inference_stats!.fail!.count).toBe(0);
  });
});

describe('queue policy, model control and instances on real models', () => {
  const longText = (i: number) => `request ${i}: ${'the quick brown fox jumps over the lazy dog and keeps running '.repeat(4)}`;

  it('refuses requests beyond max_queue_size with RESOURCE_EXHAUSTED and serves the others correctly', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => call<ModelInferResponse>(client, 'ModelInfer', { ...embedRequest([longText(i)], { id: `q${i}` }), model_name: 'queue-1' })),
    );
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as grpc.ServiceError);
    const served = outcomes.filter((o): o is PromiseFulfilledResult<ModelInferResponse> => o.status === 'fulfilled').map((o) => o.value);
    expect(refused.length).toBeGreaterThan(0);
    expect(served.length).toBeGreaterThanOrEqual(2); // the one executing and the one queued, at least
    for (const error of refused) {
      expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(error.details).toBe("Exceeds maximum queue size: model 'queue-1' queues at most 1 request(s), got one more while 1 wait");
    }
    for (const response of served) expect(response.outputs[0].shape).toEqual([1, DIM]);
  });

  it('refuses a malformed priority and sequence parameters with INVALID_ARGUMENT', async () => {
    const priority = await callError(client, 'ModelInfer', embedRequest(['x'], { parameters: { priority: { string_param: 'urgent' } } }));
    expect(priority.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(priority.details).toContain("parameter 'priority' for model 'sluice-embed' expects a non-negative integer");
    const sequence = await callError(client, 'ModelInfer', embedRequest(['x'], { parameters: { sequence_id: { string_param: 'conversation-1' } } }));
    expect(sequence.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(sequence.details).toContain('has no sequence batcher');
  });

  it('lets requests waiting in the queue of an unloaded model finish, then refuses new ones; load brings it back', async () => {
    const pending = Array.from({ length: 20 }, (_, i) => call<ModelInferResponse>(client, 'ModelInfer', { ...embedRequest([longText(i)], { id: `u${i}` }), model_name: 'unload-me' }));
    let settled = 0;
    pending.forEach(
      (p) =>
        void p.then(
          () => settled++,
          () => settled++,
        ),
    );
    const queued = () => server.core.pendingRequests().find((r) => r.name === 'unload-me')?.pending ?? 0;
    while (queued() === 0 && settled < 20) await new Promise((resolve) => setImmediate(resolve));
    expect(queued()).toBeGreaterThan(0); // the unload below finds requests waiting
    await call(client, 'RepositoryModelUnload', { model_name: 'unload-me' });
    expect(settled).toBe(20); // the unload returned after the queue drained
    const responses = await Promise.all(pending);
    responses.forEach((r, i) => expect(r).toMatchObject({ id: `u${i}`, model_name: 'unload-me' }));
    const refused = await callError(client, 'ModelInfer', { ...embedRequest(['late']), model_name: 'unload-me' });
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.details).toBe("Request for unknown model: 'unload-me' is not ready: unloaded");
    await call(client, 'RepositoryModelLoad', { model_name: 'unload-me' });
    expect(await call(client, 'ModelReady', { name: 'unload-me' })).toEqual({ ready: true });
    await expect(call(client, 'ModelInfer', { ...embedRequest(['back']), model_name: 'unload-me' })).resolves.toMatchObject({ model_name: 'unload-me' });
  });

  it('answers a 200-request concurrent mix of two models, every response matching its request', async () => {
    const models = [MODEL, 'embed-b'];
    const requests = Array.from({ length: 200 }, (_, i) => ({
      model: models[i % 2],
      id: `mix-${i}`,
      texts: Array.from({ length: 1 + (i % 3) }, (_, j) => `mixed request ${i} text ${j} about ${['cats', 'ships', 'stars', 'bread'][(i + j) % 4]}`),
    }));
    const before = (await call<{ model_stats: ModelStatistics[] }>(client, 'ModelStatistics', { name: 'embed-b' })).model_stats[0];
    const responses = await Promise.all(requests.map((r) => call<ModelInferResponse>(client, 'ModelInfer', { ...embedRequest(r.texts, { id: r.id }), model_name: r.model })));
    let differ = 0;
    for (const [i, r] of requests.entries()) {
      const response = responses[i];
      expect(response).toMatchObject({ model_name: r.model, id: r.id });
      const rows = vectors(response);
      expect(rows).toHaveLength(r.texts.length);
      // Each row is what this model gives the text on its own; the other model gives another vector.
      const alone = vectors(await call<ModelInferResponse>(client, 'ModelInfer', { ...embedRequest([r.texts[0]]), model_name: r.model }))[0];
      const other = vectors(await call<ModelInferResponse>(client, 'ModelInfer', { ...embedRequest([r.texts[0]]), model_name: models[(i + 1) % 2] }))[0];
      expect(dot(rows[0], alone)).toBeCloseTo(1, 5);
      if (dot(rows[0], other) < 0.999) differ++;
    }
    expect(differ).toBe(200);
    const after = (await call<{ model_stats: ModelStatistics[] }>(client, 'ModelStatistics', { name: 'embed-b' })).model_stats[0];
    const instances = server.core.instanceStatistics().filter((s) => s.name === 'embed-b');
    expect(instances.map(({ instance, kind, device }) => ({ instance, kind, device }))).toEqual([
      { instance: 'embed-b_0_0', kind: 'KIND_GPU', device: 0 },
      { instance: 'embed-b_0_1', kind: 'KIND_GPU', device: 1 },
    ]);
    expect(instances.reduce((n, s) => n + s.executions, 0)).toBe(after.execution_count);
    expect(after.inference_count - before.inference_count).toBeGreaterThanOrEqual(200); // 100 mixed + their checks
  });
});

describe('stop', () => {
  it('drains, then refuses connections', async () => {
    const extra = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ test: 'stop' }) });
    const c = tritonTestClient(`127.0.0.1:${extra.grpcPort}`);
    const inflight = call<ModelInferResponse>(c, 'ModelInfer', embedRequest(['finish me']));
    await new Promise((r) => setTimeout(r, 20));
    await extra.stop();
    await expect(inflight).resolves.toMatchObject({ model_name: MODEL });
    await expect(httpStatus(extra.httpPort, '/v2/health/live')).rejects.toThrow();
    c.close();
  });
});
