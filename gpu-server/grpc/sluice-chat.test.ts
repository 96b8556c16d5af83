/**
 * ModelStreamInfer against the real decoupled generation model (sluice-chat,
 * the causal-lm backend in its worker thread) through a real gpu-server and a
 * plain grpc-js client: streamed deltas with Triton's final flag, the vLLM
 * backend's optional outputs, cancellation by the client, and the refusal of
 * ModelInfer for a decoupled model.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../lib/log';
import { decodeBytesTensor, encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { CANCEL_REQUEST_PARAMETER } from '../../protocol/triton/cancel';
import type { ModelStatistics__Output as ModelStatistics, ModelStreamInferResponse__Output as ModelStreamInferResponse } from '../../protocol/triton/messages';
import { PROJECT_REPOSITORY } from '../testing/temp-repository';
import { startGpuServer, type GpuServer } from '../server';
import { type TritonTestClient, openStream, streamAll, tritonTestClient } from '../testing/test-client';

const MODEL = 'sluice-chat';
type Client = TritonTestClient;

let repository: string;
let server: GpuServer;
let client: Client;

const bool = (name: string, value: boolean) => ({ input: { name, datatype: 'BOOL', shape: [1] }, raw: Buffer.from([value ? 1 : 0]) });
const text = (name: string, value: string) => ({ input: { name, datatype: 'BYTES', shape: [1] }, raw: encodeBytesTensor([value]) });

function generateRequest(id: string, prompt: string, sampling: Record<string, unknown>) {
  const tensors = [
    text('text_input', prompt),
    bool('stream', true),
    text('sampling_parameters', JSON.stringify(sampling)),
    bool('exclude_input_in_output', true),
    bool('return_num_output_tokens', true),
    bool('return_finish_reason', true),
  ];
  return { model_name: MODEL, id, inputs: tensors.map((t) => t.input), raw_input_contents: tensors.map((t) => t.raw) };
}

function output(r: ModelStreamInferResponse, name: string): Buffer | undefined {
  const i = r.infer_response!.outputs.findIndex((o) => o.name === name);
  return i < 0 ? undefined : r.infer_response!.raw_output_contents[i];
}
const isFinal = (r: ModelStreamInferResponse) => (r.infer_response?.parameters?.triton_final_response as { bool_param?: boolean } | undefined)?.bool_param === true;

async function chatStats(): Promise<ModelStatistics> {
  return new Promise((resolve, reject) =>
    (client.ModelStatistics as (r: unknown, cb: (e: Error | null, v: { model_stats: ModelStatistics[] }) => void) => void).call(client, { name: MODEL }, (e, v) =>
      e ? reject(e) : resolve(v.model_stats[0]),
    ),
  );
}

beforeAll(async () => {
  repository = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-chat-grpc-'));
  fs.cpSync(path.join(PROJECT_REPOSITORY, MODEL), path.join(repository, MODEL), { recursive: true });
  server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ test: 'sluice-chat-grpc' }) });
  client = tritonTestClient(`127.0.0.1:${server.grpcPort}`);
}, 120_000);

afterAll(async () => {
  client?.close();
  await server?.stop();
  fs.rmSync(repository, { recursive: true, force: true });
});

it('streams deltas, the last one final with finish_reason, the token counts adding up to max_tokens', async () => {
  const responses = await streamAll(client, [generateRequest('g1', 'Hello there', { max_tokens: 8, seed: 7, temperature: 0.8, ignore_eos: true })]);
  expect(responses.every((r) => r.error_message === '' && r.infer_response!.id === 'g1')).toBe(true);
  expect(responses.length).toBeGreaterThanOrEqual(2);
  expect(responses.map(isFinal)).toEqual(responses.map((_, i) => i === responses.length - 1));
  const last = responses[responses.length - 1];
  expect(decodeBytesTensor(output(last, 'finish_reason')!, 1)[0].toString()).toBe('length');
  // As the vLLM backend streams it, each response counts the tokens of its own delta.
  expect(responses.reduce((n, r) => n + (output(r, 'num_output_tokens')?.readUInt32LE(0) ?? 0), 0)).toBe(8);
  const generated = responses
    .map((r) => output(r, 'text_output'))
    .filter((b): b is Buffer => !!b)
    .map((b) => decodeBytesTensor(b, 1)[0].toString())
    .join('');
  expect(generated.length).toBeGreaterThan(0);
}, 60_000);

it('stops generating when the client cancels the call, and the statistics show the cancellation', async () => {
  const before = await chatStats();
  const stream = openStream(client);
  let received = 0;
  const closed = new Promise<void>((resolve) => {
    stream.on('data', () => {
      if (++received === 2) stream.cancel();
    });
    stream.on('error', () => resolve());
    stream.on('end', () => resolve());
  });
  stream.write(generateRequest('long', 'Tell me everything', { max_tokens: 100000, seed: 1, ignore_eos: true }));
  await closed;
  const deadline = Date.now() + 5000;
  const live = () =>
    server.core
      .instanceStatistics()
      .filter((s) => s.name === MODEL)
      .reduce((n, s) => n + s.activeSequences, 0);
  while (live() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(live()).toBe(0);
  let after = await chatStats();
  while (after.inference_stats!.fail!.count === before.inference_stats!.fail!.count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    after = await chatStats();
  }
  const cancels = (s: ModelStatistics) => Object.values(s.response_stats).reduce((n, r) => n + r.cancel!.count, 0);
  expect(cancels(after) - cancels(before)).toBe(1);
  expect(after.inference_stats!.fail!.count - before.inference_stats!.fail!.count).toBe(1);
}, 60_000);

it('cancels one request of a shared call with a cancel message, and the others on the call go on', async () => {
  const before = await chatStats();
  const stream = openStream(client);
  const byId = new Map<string, ModelStreamInferResponse[]>();
  const keptDone = new Promise<void>((resolve) => {
    stream.on('data', (r: ModelStreamInferResponse) => {
      const id = r.infer_response!.id;
      byId.set(id, [...(byId.get(id) ?? []), r]);
      if (id === 'doomed' && byId.get(id)!.length === 2) {
        stream.write({ model_name: MODEL, id: 'doomed', inputs: [], parameters: { [CANCEL_REQUEST_PARAMETER]: { bool_param: true } } });
      }
      if (id === 'kept' && isFinal(r)) resolve();
    });
  });
  stream.write(generateRequest('doomed', 'Tell me everything', { max_tokens: 100000, seed: 1, ignore_eos: true }));
  stream.write(generateRequest('kept', 'Tell me a little', { max_tokens: 40, seed: 2, ignore_eos: true }));
  await keptDone;
  stream.end();
  expect(byId.get('kept')!.every((r) => !r.error_message)).toBe(true);
  expect(byId.get('doomed')!.length).toBeLessThan(100);
  let after = await chatStats();
  const deadline = Date.now() + 5000;
  const cancels = (s: ModelStatistics) => Object.values(s.response_stats).reduce((n, r) => n + r.cancel!.count, 0);
  while (cancels(after) === cancels(before) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    after = await chatStats();
  }
  expect(cancels(after) - cancels(before)).toBe(1);
}, 60_000);

it('refuses ModelInfer for the decoupled model with UNIMPLEMENTED', async () => {
  const error = await new Promise<grpc.ServiceError>((resolve, reject) =>
    (client.ModelInfer as (r: unknown, cb: (e: grpc.ServiceError | null) => void) => void).call(client, generateRequest('x', 'hi', { max_tokens: 1 }), (e) =>
      e ? resolve(e) : reject(new Error('ModelInfer succeeded')),
    ),
  );
  expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
  expect(error.details).toContain("ModelInfer RPC doesn't support models with decoupled transaction policy");
});
