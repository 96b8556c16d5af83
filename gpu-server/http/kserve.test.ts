/**
 * The KServe v2 REST endpoints over real HTTP (node's fetch) against a real
 * gpu-server on free ports: a repository holding sluice-embed (copied from
 * the built model repository) and a model whose config.pbtxt is broken.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../lib/log';
import { encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { startGpuServer, type GpuServer } from '../server';

const MODEL = 'sluice-embed';
const DIM = 128;
const SOURCE = path.join(__dirname, '..', 'model_repository');

let repository: string;
let server: GpuServer;
let base: string;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: the body is whatever JSON the server answered, each route's shape; the assertions, not a type, check it
  json: any;
}

async function request(method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const response = await fetch(`${base}${urlPath}`, init);
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

const get = (urlPath: string) => request('GET', urlPath);
const post = (urlPath: string, body?: unknown, headers?: Record<string, string>) => request('POST', urlPath, body, headers);

function embedRequest(texts: string[], extra: Record<string, unknown> = {}) {
  return { inputs: [{ name: 'text', datatype: 'BYTES', shape: [texts.length, 1], data: texts }], ...extra };
}

const dot = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * b[i], 0);

function copyModel(name: string): void {
  fs.mkdirSync(path.join(repository, name, '1'), { recursive: true });
  fs.copyFileSync(path.join(SOURCE, name, 'config.pbtxt'), path.join(repository, name, 'config.pbtxt'));
  fs.copyFileSync(path.join(SOURCE, name, '1', 'model.onnx'), path.join(repository, name, '1', 'model.onnx'));
}

beforeAll(async () => {
  repository = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-http-'));
  copyModel(MODEL);
  fs.mkdirSync(path.join(repository, 'broken', '1'), { recursive: true });
  fs.writeFileSync(path.join(repository, 'broken', 'config.pbtxt'), 'name: "broken"\nmax_batch_size: 4\ninput [ { name: "x" data_type: TYPE_NOPE dims: [1] } ]\n');
  server = await startGpuServer({
    repository,
    host: '127.0.0.1',
    grpcPort: 0,
    httpPort: 0,
    metricsPort: 0,
    maxHttpBodyBytes: 256 * 1024,
    modelControlMode: 'explicit',
    logger: createLogger({ test: 'http' }),
  });
  base = `http://127.0.0.1:${server.httpPort}`;
}, 60_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(repository, { recursive: true, force: true });
});

describe('health, metadata, config, statistics', () => {
  it('answers live and ready with 200 and an empty body', async () => {
    for (const p of ['/v2/health/live', '/v2/health/ready']) {
      const answer = await get(p);
      expect([answer.status, answer.text]).toEqual([200, '']);
    }
  });

  it('answers unknown paths with 404 and wrong methods with 405, both as JSON errors', async () => {
    const missing = await get('/v2/nothing');
    expect(missing.status).toBe(404);
    expect(missing.json.error).toBe('Not Found: no route for GET /v2/nothing; the KServe v2 paths start with /v2/health, /v2/models or /v2/repository');
    const wrong = await post('/v2/health/live');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, HEAD');
    expect(wrong.json.error).toBe('Method Not Allowed: POST /v2/health/live expects GET');
    expect((await get(`/v2/models/${MODEL}/infer`)).status).toBe(405);
  });

  it('answers server metadata', async () => {
    const answer = await get('/v2');
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ name: 'sluice-gpu-server', version: expect.any(String), extensions: expect.arrayContaining(['model_repository', 'statistics', 'binary_tensor_data']) });
  });

  it('answers model metadata, with and without a version', async () => {
    const expected = {
      name: MODEL,
      versions: ['1'],
      platform: 'python',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1, 1] }],
      outputs: [{ name: 'embedding', datatype: 'FP32', shape: [-1, DIM] }],
    };
    expect((await get(`/v2/models/${MODEL}`)).json).toEqual(expected);
    expect((await get(`/v2/models/${MODEL}/versions/1`)).json).toEqual(expected);
  });

  it('answers 404 for an unknown model or version, 400 for a malformed version', async () => {
    const model = await get('/v2/models/nope');
    expect(model.status).toBe(404);
    expect(model.json).toEqual({ error: "Request for unknown model: 'nope' is not found" });
    const version = await get(`/v2/models/${MODEL}/versions/7`);
    expect(version.status).toBe(404);
    expect(version.json.error).toContain("'sluice-embed' version 7 is not found (served: 1)");
    const malformed = await get(`/v2/models/${MODEL}/versions/x1`);
    expect(malformed.status).toBe(400);
    expect(malformed.json.error).toBe("model version expects a positive integer, but got 'x1'");
  });

  it('answers model readiness: 200, 400 when not ready, 404 when unknown', async () => {
    expect((await get(`/v2/models/${MODEL}/ready`)).status).toBe(200);
    expect((await get(`/v2/models/${MODEL}/versions/1/ready`)).status).toBe(200);
    const broken = await get('/v2/models/broken/ready');
    expect(broken.status).toBe(400);
    expect(broken.json.error).toBe("model 'broken' is not ready; see POST /v2/repository/index for the reason");
    expect((await get('/v2/models/missing/ready')).status).toBe(404);
  });

  it('answers the model configuration as JSON', async () => {
    for (const p of [`/v2/models/${MODEL}/config`, `/v2/models/${MODEL}/versions/1/config`]) {
      const answer = await get(p);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('application/json');
      expect(answer.json).toMatchObject({
        name: MODEL,
        max_batch_size: 64,
        input: [{ name: 'text', data_type: 'TYPE_STRING', dims: [1] }],
        output: [{ name: 'embedding', data_type: 'TYPE_FP32', dims: [DIM] }],
        dynamic_batching: expect.any(Object),
      });
    }
  });

  it('answers statistics per model, per version and for every model', async () => {
    const one = await get(`/v2/models/${MODEL}/stats`);
    expect(one.status).toBe(200);
    expect(one.json.model_stats).toEqual([expect.objectContaining({ name: MODEL, version: '1', inference_stats: expect.any(Object) })]);
    expect((await get(`/v2/models/${MODEL}/versions/1/stats`)).json.model_stats).toHaveLength(1);
    expect((await get('/v2/models/stats')).json.model_stats.map((s: { name: string }) => s.name)).toEqual([MODEL]);
    expect((await get('/v2/models/nope/stats')).status).toBe(404);
  });

  it('answers the repository index, every model or the ready ones', async () => {
    const all = await post('/v2/repository/index');
    expect(all.status).toBe(200);
    expect(all.json).toEqual([
      { name: 'broken', version: '', state: 'UNAVAILABLE', reason: expect.stringMatching(/broken\/config\.pbtxt:3:32: .*'TYPE_NOPE'$/) },
      { name: MODEL, version: '1', state: 'READY' },
    ]);
    expect((await post('/v2/repository/index', { ready: true })).json).toEqual([{ name: MODEL, version: '1', state: 'READY' }]);
    const bad = await post('/v2/repository/index', { ready: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('the repository index request expects \'ready\' to be a boolean, got string "yes"');
    expect((await post('/v2/repository/elsewhere/index')).status).toBe(501);
  });
});

describe('POST /infer on sluice-embed', () => {
  const texts = ['The cat sat on the mat', 'Quantum computers use qubits', 'A cat was sitting on a mat'];

  it('embeds a batch given as flattened data: shape, unit norm, similar texts closer', async () => {
    const answer = await post(`/v2/models/${MODEL}/infer`, embedRequest(texts, { id: 'req-1' }));
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ model_name: MODEL, model_version: '1', id: 'req-1' });
    const [output] = answer.json.outputs;
    expect(output).toMatchObject({ name: 'embedding', datatype: 'FP32', shape: [3, DIM] });
    expect(output.data).toHaveLength(3 * DIM);
    const rows = [0, 1, 2].map((i) => output.data.slice(i * DIM, (i + 1) * DIM) as number[]);
    for (const row of rows) expect(dot(row, row)).toBeCloseTo(1, 5);
    expect(dot(rows[0], rows[2])).toBeGreaterThan(dot(rows[0], rows[1]) + 0.3);
  });

  it('accepts nested data, omits an empty id, and returns only the outputs asked for', async () => {
    const flat = await post(`/v2/models/${MODEL}/infer`, embedRequest(texts.slice(0, 2)));
    const nested = await post(`/v2/models/${MODEL}/infer`, {
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 1], data: [[texts[0]], [texts[1]]] }],
      outputs: [{ name: 'embedding' }],
    });
    expect(nested.status).toBe(200);
    expect(nested.json.id).toBeUndefined();
    expect(nested.json.outputs.map((o: { name: string }) => o.name)).toEqual(['embedding']);
    expect(nested.json.outputs[0].data).toEqual(flat.json.outputs[0].data);
  });

  it('takes and returns binary tensors (Inference-Header-Content-Length)', async () => {
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 1], parameters: { binary_data_size: encodeBytesTensor(texts.slice(0, 2)).length } }],
        outputs: [{ name: 'embedding', parameters: { binary_data: true } }],
      }),
    );
    const body = Buffer.concat([header, encodeBytesTensor(texts.slice(0, 2))]);
    const response = await fetch(`${base}/v2/models/${MODEL}/infer`, {
      method: 'POST',
      body,
      headers: { 'inference-header-content-length': String(header.length) },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = Buffer.from(await response.arrayBuffer());
    const jsonLength = Number(response.headers.get('inference-header-content-length'));
    const json = JSON.parse(bytes.subarray(0, jsonLength).toString('utf8'));
    expect(json.outputs).toEqual([{ name: 'embedding', datatype: 'FP32', shape: [2, DIM], parameters: { binary_data_size: 2 * DIM * 4 } }]);
    const binary = bytes.subarray(jsonLength);
    expect(binary.length).toBe(2 * DIM * 4);
    const values = Array.from(new Float32Array(binary.buffer.slice(binary.byteOffset, binary.byteOffset + binary.length)));
    const viaJson = (await post(`/v2/models/${MODEL}/infer`, embedRequest(texts.slice(0, 2)))).json.outputs[0].data as number[];
    values.forEach((v, i) => expect(v).toBeCloseTo(viaJson[i], 6));
  });

  it('returns every output as binary with the request parameter binary_data_output', async () => {
    const response = await fetch(`${base}/v2/models/${MODEL}/infer`, { method: 'POST', body: JSON.stringify(embedRequest(['x'], { parameters: { binary_data_output: true } })) });
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(bytes.length - Number(response.headers.get('inference-header-content-length'))).toBe(DIM * 4);
  });
});

describe('POST /infer errors', () => {
  const infer = (body: unknown, model = MODEL, headers?: Record<string, string>) => post(`/v2/models/${model}/infer`, body, headers);

  it.each([
    ['an unknown model', () => infer(embedRequest(['x']), 'nope'), 404, "Request for unknown model: 'nope' is not found"],
    ['a model that failed to load', () => infer(embedRequest(['x']), 'broken'), 503, expect.stringContaining("'broken'")],
    ['an unknown version', () => post(`/v2/models/${MODEL}/versions/3/infer`, embedRequest(['x'])), 404, expect.stringContaining('version 3 is not found')],
    ['malformed JSON', () => infer('{"inputs": [', MODEL), 400, expect.stringMatching(/^failed to parse the inference request JSON: expected a JSON document, got invalid JSON \(.+\)$/)],
    ['an empty body', () => infer('', MODEL), 400, 'failed to parse the inference request JSON: expected a JSON document, got an empty body'],
    ['a JSON array', () => infer([]), 400, 'the inference request expects a JSON object, got an array'],
    ['no inputs', () => infer({}), 400, "the inference request expects 'inputs' to be an array of tensors, got nothing"],
    [
      'a wrong datatype',
      () => infer({ inputs: [{ name: 'text', datatype: 'FP32', shape: [1, 1], data: [1] }] }),
      400,
      "unexpected datatype FP32 for inference input 'text' of model 'sluice-embed': expected BYTES, got FP32",
    ],
    [
      'an unknown datatype',
      () => infer({ inputs: [{ name: 'text', datatype: 'STRING', shape: [1, 1], data: ['x'] }] }),
      400,
      expect.stringMatching(/^input 'text' has invalid datatype string "STRING"; expected one of BOOL, .*BYTES$/),
    ],
    [
      'data that does not fit the datatype',
      () => infer({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 1], data: ['a', 7] }] }),
      400,
      "input 'text' of datatype BYTES expects strings in 'data', but element 1 is number 7",
    ],
    [
      'a wrong shape',
      () => infer({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 2], data: ['a', 'b'] }] }),
      400,
      "unexpected shape for input 'text' for model 'sluice-embed': expected [-1,1], got [1,2]",
    ],
    [
      'data that does not match the shape',
      () => infer({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [3, 1], data: ['a', 'b'] }] }),
      400,
      "input 'text' has 2 element(s) in 'data', but its shape [3,1] expects 3",
    ],
    [
      'a batch over max_batch_size',
      () => infer(embedRequest(Array.from({ length: 65 }, (_, i) => `t${i}`))),
      400,
      "inference request batch-size must be between 1 and 64 for model 'sluice-embed', but input 'text' has batch size 65",
    ],
    ['an unknown output', () => infer(embedRequest(['x'], { outputs: [{ name: 'vector' }] })), 400, "unexpected inference output 'vector' for model 'sluice-embed'; expected: embedding"],
    [
      'a reserved parameter',
      () => infer(embedRequest(['x'], { parameters: { triton_enable_empty_final_response: true } })),
      400,
      "parameter keys starting with 'triton_' are reserved for Triton usage and should not be specified; got 'triton_enable_empty_final_response'",
    ],
    ['a sequence parameter', () => infer(embedRequest(['x'], { parameters: { sequence_id: 5 } })), 400, expect.stringContaining("parameter 'sequence_id' is not supported for model 'sluice-embed'")],
    ['an object parameter', () => infer(embedRequest(['x'], { parameters: { priority: {} } })), 400, "parameter 'priority' expects a string, number or boolean, got an object"],
    ['shared memory', () => infer({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], parameters: { shared_memory_region: 'r' } }] }), 501, expect.stringContaining('shared memory')],
    [
      'binary data without the header',
      () => infer({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], parameters: { binary_data_size: 5 } }] }),
      400,
      "input 'text' declares binary data but the request has no Inference-Header-Content-Length header",
    ],
    [
      'a header length beyond the body',
      () => infer(embedRequest(['x']), MODEL, { 'inference-header-content-length': '100000' }),
      400,
      expect.stringMatching(/^Inference-Header-Content-Length expects an integer from 1 to the body size \d+, got '100000'$/),
    ],
  ])('refuses %s', async (_what, send, status, message) => {
    const answer = await send();
    expect(answer.status).toBe(status);
    expect(answer.headers.get('content-type')).toBe('application/json');
    expect(answer.json).toEqual({ error: message });
  });

  it('refuses a body over the limit with 413 before reading it', async () => {
    const answer = await infer(embedRequest(['x'.repeat(300 * 1024)]));
    expect(answer.status).toBe(413);
    expect(answer.json.error).toMatch(/^request body of \d+ bytes exceeds the limit of 262144 bytes$/);
  });

  it('counts no failure for requests refused before reaching the model', async () => {
    const [stats] = (await get(`/v2/models/${MODEL}/stats`)).json.model_stats;
    expect(stats.inference_stats.fail.count).toBe(0);
  });
});

describe('generate on a non-decoupled model', () => {
  it('maps top-level keys to inputs and returns the output by name', async () => {
    const answer = await post(`/v2/models/${MODEL}/generate`, { text: 'The cat sat on the mat', id: 'g1' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/json');
    expect(answer.json).toMatchObject({ model_name: MODEL, model_version: '1', id: 'g1' });
    expect(answer.json.embedding).toHaveLength(DIM);
    const viaInfer = (await post(`/v2/models/${MODEL}/infer`, embedRequest(['The cat sat on the mat']))).json.outputs[0].data;
    expect(dot(answer.json.embedding, viaInfer)).toBeCloseTo(1, 5);
  });

  it('maps keys nested in parameters to inputs as well', async () => {
    const answer = await post(`/v2/models/${MODEL}/versions/1/generate`, { parameters: { text: 'hello' } });
    expect(answer.status).toBe(200);
    expect(answer.json.embedding).toHaveLength(DIM);
  });

  it('fills the variable batch dimension from a 1-D array', async () => {
    const answer = await post(`/v2/models/${MODEL}/generate`, { text: ['The cat sat on the mat', 'Quantum computers use qubits'] });
    expect(answer.status).toBe(200);
    const viaInfer = (await post(`/v2/models/${MODEL}/infer`, embedRequest(['The cat sat on the mat', 'Quantum computers use qubits']))).json.outputs[0].data;
    expect(answer.json.embedding).toEqual(viaInfer);
  });

  it('streams the one response as a Server-Sent Event', async () => {
    const answer = await post(`/v2/models/${MODEL}/generate_stream`, { text: 'hello' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events = answer.text.split('\n\n').filter(Boolean);
    expect(events).toHaveLength(1);
    expect(events[0].startsWith('data: ')).toBe(true);
    const event = JSON.parse(events[0].slice('data: '.length));
    expect(event).toMatchObject({ model_name: MODEL, model_version: '1' });
    expect(event.embedding).toHaveLength(DIM);
  });

  it.each([
    ['generate', 'an unknown model', 'nope', { text: 'x' }, 404, "Request for unknown model: 'nope' is not found"],
    ['generate_stream', 'an unknown model', 'nope', { text: 'x' }, 404, "Request for unknown model: 'nope' is not found"],
    ['generate', 'a missing input', MODEL, { prompt: 'x' }, 400, "model 'sluice-embed' requires input(s) 'text', but the request is missing 'text'"],
    ['generate', 'a value of the wrong type', MODEL, { text: 3 }, 400, "generate input 'text' of datatype BYTES expects strings in 'data', but element 0 is number 3"],
    ['generate', 'a nested array', MODEL, { text: [['a']] }, 400, "generate input 'text' expects a scalar or a 1-D array, got a nested array"],
    ['generate', 'parameters that are not an object', MODEL, { text: 'a', parameters: 1 }, 400, "the generate request's 'parameters' expects a JSON object, got number 1"],
    ['generate_stream', 'an object parameter', MODEL, { text: 'a', temperature: { x: 1 } }, 400, "parameter 'temperature' expects a string, number or boolean, got an object"],
  ])('%s refuses %s before streaming, as a JSON error', async (endpoint, _what, model, body, status, message) => {
    const answer = await post(`/v2/models/${model}/${endpoint}`, body);
    expect(answer.status).toBe(status);
    expect(answer.headers.get('content-type')).toBe('application/json');
    expect(answer.json).toEqual({ error: message });
  });
});

describe('model control', () => {
  it('unloads a model (then it is not ready and refuses inference) and loads it again', async () => {
    const unloaded = await post(`/v2/repository/models/${MODEL}/unload`, { parameters: { unload_dependents: false } });
    expect([unloaded.status, unloaded.text]).toEqual([200, '']);
    expect((await get(`/v2/models/${MODEL}/ready`)).status).toBe(400);
    expect((await post(`/v2/models/${MODEL}/infer`, embedRequest(['x']))).status).toBe(503);

    const loaded = await post(`/v2/repository/models/${MODEL}/load`);
    expect([loaded.status, loaded.text]).toEqual([200, '']);
    expect((await get(`/v2/models/${MODEL}/ready`)).status).toBe(200);
    expect((await post(`/v2/models/${MODEL}/infer`, embedRequest(['x']))).status).toBe(200);
  });

  it('refuses what it cannot do, saying why', async () => {
    const unknown = await post('/v2/repository/models/absent/unload');
    expect(unknown.status).toBe(404);
    const config = await post(`/v2/repository/models/${MODEL}/load`, { parameters: { config: '{}' } });
    expect(config.status).toBe(501);
    expect(config.json.error).toBe("load parameter 'config' is not supported by the Sluice gpu-server: it loads 'sluice-embed' from the model repository as it is on disk");
    const bad = await post(`/v2/repository/models/${MODEL}/unload`, { parameters: { unload_dependents: 'yes' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('Unable to parse \'unload_dependents\': expected a boolean, got string "yes"');
    expect((await get(`/v2/repository/models/${MODEL}/load`)).status).toBe(405);
  });
});
