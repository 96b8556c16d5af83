/**
 * Triton's generate extension over real HTTP: against the decoupled
 * `sluice-chat` model of a real gpu-server (streaming, determinism,
 * cancellation on disconnect), and against a scripted core for the paths a
 * real model does not take on demand (errors after the first event, a model
 * answering twice to /generate).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../lib/log';
import { InferenceError, InferenceErrorCode } from '../core/errors';
import type { CoreInferRequest, CoreModelMetadata, CoreStreamResponse, InferenceCore } from '../core/inference-core';
import { encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { startGpuServer, type GpuServer } from '../server';
import { createHttpHandler } from './handler';

const CHAT = 'sluice-chat';
const CHAT_BATCH = 'sluice-chat-batch';
const MODELS = path.join(__dirname, '..', 'model_repository');
const PROMPT = 'The quick brown fox';

interface SseAnswer {
  status: number;
  contentType: string | null;
  events: Array<Record<string, unknown>>;
}

function parseEvents(text: string): Array<Record<string, unknown>> {
  const blocks = text.split('\n\n');
  expect(blocks.pop()).toBe(''); // every event ends with a blank line
  return blocks.map((block) => {
    expect(block.startsWith('data: ')).toBe(true);
    return JSON.parse(block.slice('data: '.length)) as Record<string, unknown>;
  });
}

async function postJson(base: string, urlPath: string, body: unknown) {
  const response = await fetch(`${base}${urlPath}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: response.status, contentType: response.headers.get('content-type'), json: (await response.json()) as Record<string, unknown> };
}

async function postSse(base: string, urlPath: string, body: unknown): Promise<SseAnswer> {
  const response = await fetch(`${base}${urlPath}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: response.status, contentType: response.headers.get('content-type'), events: parseEvents(await response.text()) };
}

const sampling = (params: Record<string, unknown>) => JSON.stringify(params);

describe('generate and generate_stream on the decoupled sluice-chat (and /infer on sluice-chat-batch)', () => {
  let repository: string;
  let server: GpuServer;
  let base: string;

  beforeAll(async () => {
    repository = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-generate-'));
    for (const model of [CHAT, CHAT_BATCH]) {
      const source = path.join(MODELS, model);
      fs.mkdirSync(path.join(repository, model, '1'), { recursive: true });
      fs.copyFileSync(path.join(source, 'config.pbtxt'), path.join(repository, model, 'config.pbtxt'));
      for (const file of fs.readdirSync(path.join(source, '1'))) fs.copyFileSync(path.join(source, '1', file), path.join(repository, model, '1', file));
    }
    server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ test: 'generate' }) });
    base = `http://127.0.0.1:${server.httpPort}`;
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
    fs.rmSync(repository, { recursive: true, force: true });
  });

  it('answers /generate with one JSON object: the whole text (prompt included, as vLLM does) and the asked-for counts', async () => {
    const answer = await postJson(base, `/v2/models/${CHAT}/generate`, {
      text_input: PROMPT,
      sampling_parameters: sampling({ max_tokens: 12, temperature: 0, ignore_eos: true }),
      return_num_output_tokens: true,
      return_finish_reason: true,
      id: 'gen-1',
    });
    expect(answer.status).toBe(200);
    expect(answer.contentType).toBe('application/json');
    expect(answer.json).toMatchObject({ model_name: CHAT, model_version: '1', id: 'gen-1', num_output_tokens: 12, finish_reason: 'length' });
    expect(answer.json.text_output).toEqual(expect.stringMatching(new RegExp(`^${PROMPT}.+`, 's')));
    expect(Object.keys(answer.json).some((k) => k.startsWith('triton_'))).toBe(false);
  });

  it('streams deltas as Server-Sent Events whose concatenation is the non-streamed text, the last with finish_reason', async () => {
    const params = { max_tokens: 12, temperature: 0, ignore_eos: true };
    const whole = await postJson(base, `/v2/models/${CHAT}/generate`, { text_input: PROMPT, sampling_parameters: sampling(params), parameters: { exclude_input_in_output: true } });
    const streamed = await postSse(base, `/v2/models/${CHAT}/generate_stream`, {
      text_input: PROMPT,
      sampling_parameters: sampling(params),
      parameters: { stream: true },
      return_finish_reason: true,
    });
    expect(streamed.status).toBe(200);
    expect(streamed.contentType).toBe('text/event-stream; charset=utf-8');
    expect(streamed.events.length).toBeGreaterThan(1);
    for (const event of streamed.events) expect(event).toMatchObject({ model_name: CHAT, model_version: '1', text_output: expect.any(String) });
    expect(streamed.events.map((e) => e.text_output).join('')).toBe(whole.json.text_output);
    expect(streamed.events.at(-1)!.finish_reason).toBe('length');
    expect(streamed.events.slice(0, -1).every((e) => e.finish_reason === undefined)).toBe(true);
  });

  it("takes sampling parameters from the request's parameters when there is no sampling_parameters tensor, as the vLLM backend does", async () => {
    // Triton's own generate example for a vLLM model.
    const viaParameters = await postJson(base, `/v2/models/${CHAT}/generate`, {
      text_input: PROMPT,
      parameters: { stream: false, temperature: 0, max_tokens: 4, ignore_eos: true },
      return_num_output_tokens: true,
    });
    expect(viaParameters.status).toBe(200);
    expect(viaParameters.json.num_output_tokens).toBe(4);
    const viaTensor = await postJson(base, `/v2/models/${CHAT}/generate`, { text_input: PROMPT, sampling_parameters: sampling({ temperature: 0, max_tokens: 4, ignore_eos: true }) });
    expect(viaParameters.json.text_output).toBe(viaTensor.json.text_output);
    const unknown = await postJson(base, `/v2/models/${CHAT}/generate`, { text_input: PROMPT, parameters: { temprature: 0 } });
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatch(/unsupported key\(s\) 'temprature'; supported: /);
  });

  it('passes request parameters to the core (priority is checked there)', async () => {
    const answer = await postJson(base, `/v2/models/${CHAT}/generate`, { text_input: PROMPT, parameters: { priority: -1 } });
    expect(answer.status).toBe(400);
    expect(answer.json.error).toBe(`parameter 'priority' for model '${CHAT}' expects a non-negative integer (the priority level, 0 for the default), but got -1`);
  });

  it('refuses /generate for a request the model answers more than once, as Triton does', async () => {
    const answer = await postJson(base, `/v2/models/${CHAT}/generate`, {
      text_input: PROMPT,
      sampling_parameters: sampling({ max_tokens: 3, temperature: 0, ignore_eos: true }),
      parameters: { stream: true },
    });
    expect(answer.status).toBe(500);
    expect(answer.json.error).toMatch(
      /^generate expects model 'sluice-chat' to produce exactly 1 response, but it produced [2-9]\d*; use generate_stream for models that produce a varying number of responses$/,
    );
  });

  it('serves the batched sluice-chat-batch through /infer with JSON tensors of several datatypes, matching the streamed model', async () => {
    const params = sampling({ max_tokens: 6, temperature: 0, ignore_eos: true });
    const answer = await postJson(base, `/v2/models/${CHAT_BATCH}/infer`, {
      inputs: [
        { name: 'text_input', datatype: 'BYTES', shape: [2, 1], data: [PROMPT, 'Another prompt'] },
        { name: 'sampling_parameters', datatype: 'BYTES', shape: [2, 1], data: [params, params] },
        { name: 'exclude_input_in_output', datatype: 'BOOL', shape: [2, 1], data: [[true], [true]] },
      ],
      outputs: [{ name: 'text_output' }, { name: 'num_output_tokens' }],
    });
    expect(answer.status).toBe(200);
    const outputs = answer.json.outputs as Array<{ name: string; datatype: string; shape: number[]; data: unknown[] }>;
    expect(outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['text_output', 'BYTES', [2, 1]],
      ['num_output_tokens', 'UINT32', [2, 1]],
    ]);
    expect(outputs[1].data).toEqual([6, 6]);
    const alone = await postJson(base, `/v2/models/${CHAT}/generate`, { text_input: PROMPT, sampling_parameters: params, exclude_input_in_output: true });
    expect(outputs[0].data[0]).toBe(alone.json.text_output);
  });

  it("fails only the bad request of a dynamic batch on sluice-chat-batch: a batch-mate's answer is unaffected", async () => {
    const good = sampling({ max_tokens: 4, temperature: 0, ignore_eos: true });
    const infer = (text: string, params: string) =>
      postJson(base, `/v2/models/${CHAT_BATCH}/infer`, {
        inputs: [
          { name: 'text_input', datatype: 'BYTES', shape: [1, 1], data: [text] },
          { name: 'sampling_parameters', datatype: 'BYTES', shape: [1, 1], data: [params] },
        ],
        outputs: [{ name: 'num_output_tokens' }],
      });
    // Sent together, so the dynamic batcher puts them in one execution.
    const [ok, bad] = await Promise.all([infer(PROMPT, good), infer(PROMPT, sampling({ top_p: 2 }))]);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/top_p/);
    expect(ok.status).toBe(200);
    expect((ok.json.outputs as Array<{ data: unknown[] }>)[0].data).toEqual([4]);
  });

  it('refuses /infer for a decoupled model with 501, pointing at generate_stream', async () => {
    const answer = await postJson(base, `/v2/models/${CHAT}/infer`, { inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], data: [PROMPT] }] });
    expect(answer.status).toBe(501);
    expect(answer.json.error).toBe("HTTP end point doesn't support models with decoupled transaction policy: model 'sluice-chat' is decoupled; use /generate_stream or gRPC ModelStreamInfer");
  });

  it('reports model errors before the first event as a JSON error with its status', async () => {
    const answer = await postJson(base, `/v2/models/${CHAT}/generate_stream`, { text_input: PROMPT, sampling_parameters: sampling({ max_tokens: -1 }) });
    expect(answer.status).toBe(400);
    expect(answer.contentType).toBe('application/json');
    expect(answer.json.error).toContain('sampling_parameters.max_tokens expects');
  });

  it('aborts the sequence when the client disconnects from generate_stream', async () => {
    const active = () => server.core.instanceStatistics().reduce((n, s) => n + s.activeSequences, 0);
    const abort = new AbortController();
    const response = await fetch(`${base}/v2/models/${CHAT}/generate_stream`, {
      method: 'POST',
      body: JSON.stringify({ text_input: PROMPT, sampling_parameters: sampling({ max_tokens: 1000, temperature: 0, ignore_eos: true }), parameters: { stream: true } }),
      signal: abort.signal,
    });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value!).toString('utf8')).toMatch(/^data: \{/);
    expect(active()).toBe(1); // ~1000 tokens still to go: about a second of decoding on this machine
    const abortedAt = Date.now();
    abort.abort();
    while (active() > 0 && Date.now() - abortedAt < 2_000) await new Promise((r) => setTimeout(r, 5));
    expect(active()).toBe(0);
    expect(Date.now() - abortedAt).toBeLessThan(300);
    // The server still serves the next request normally.
    const next = await postJson(base, `/v2/models/${CHAT}/generate`, { text_input: PROMPT, sampling_parameters: sampling({ max_tokens: 2 }) });
    expect(next.status).toBe(200);
  });
});

describe('generate_stream against a scripted core', () => {
  const metadata: CoreModelMetadata = { name: 'scripted', versions: ['1'], platform: 'test', inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1] }], outputs: [] };
  let script: (request: CoreInferRequest, send: (response: Partial<CoreStreamResponse>) => void) => Promise<void>;
  const core = {
    modelMetadata: () => metadata,
    inferStream: async (request: CoreInferRequest, onResponse: (r: CoreStreamResponse) => void) =>
      script(request, (r) => onResponse({ modelName: 'scripted', modelVersion: '1', id: '', outputs: [], final: false, parameters: {}, ...r })),
  } as unknown as InferenceCore;
  const text = (s: string) => ({ name: 'text_output', datatype: 'BYTES' as const, shape: [1], data: encodeBytesTensor([s]) });
  let server: http.Server;
  let base: string;

  beforeAll(async () => {
    server = http.createServer(createHttpHandler(core, { logger: createLogger({ test: 'scripted' }) }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('ends the stream with an error event when the request fails after the first event', async () => {
    script = async (_request, send) => {
      send({ outputs: [text('Hel')] });
      throw new InferenceError(InferenceErrorCode.Internal, 'the model instance crashed');
    };
    const answer = await postSse(base, '/v2/models/scripted/generate_stream', { text_input: 'x' });
    expect(answer.status).toBe(200);
    expect(answer.events).toEqual([{ model_name: 'scripted', model_version: '1', text_output: 'Hel' }, { error: 'the model instance crashed' }]);
  });

  it('ends the stream with an error event when an output cannot be written as JSON', async () => {
    script = async (_request, send) => {
      send({ outputs: [text('ok')] });
      send({ outputs: [{ name: 'half', datatype: 'FP16', shape: [1], data: Buffer.alloc(2) }], final: true });
    };
    const answer = await postSse(base, '/v2/models/scripted/generate_stream', { text_input: 'x' });
    expect(answer.events).toEqual([
      { model_name: 'scripted', model_version: '1', text_output: 'ok' },
      { error: "output 'half' of datatype FP16 cannot be returned as JSON data; request it with parameters.binary_data: true" },
    ]);
  });

  it('leaves an empty final response out of the stream and out of /generate', async () => {
    script = async (_request, send) => {
      send({ outputs: [text('all of it')] });
      send({ final: true, parameters: { triton_final_response: true } });
    };
    const streamed = await postSse(base, '/v2/models/scripted/generate_stream', { text_input: 'x' });
    expect(streamed.events).toEqual([{ model_name: 'scripted', model_version: '1', text_output: 'all of it' }]);
    const single = await postJson(base, '/v2/models/scripted/generate', { text_input: 'x' });
    expect(single).toMatchObject({ status: 200, json: { model_name: 'scripted', model_version: '1', text_output: 'all of it' } });
  });

  it('maps the core error codes to statuses in one place', async () => {
    for (const [code, status] of [
      [InferenceErrorCode.InvalidArgument, 400],
      [InferenceErrorCode.NotFound, 404],
      [InferenceErrorCode.Unavailable, 503],
      [InferenceErrorCode.ResourceExhausted, 503],
      [InferenceErrorCode.Unimplemented, 501],
      [InferenceErrorCode.Internal, 500],
    ] as const) {
      script = async () => {
        throw new InferenceError(code, `failed with ${code}`);
      };
      const answer = await postJson(base, '/v2/models/scripted/generate_stream', { text_input: 'x' });
      expect([answer.status, answer.json]).toEqual([status, { error: `failed with ${code}` }]);
    }
  });
});
