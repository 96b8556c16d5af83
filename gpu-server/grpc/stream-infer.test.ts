/**
 * The gRPC adapter over a real grpc-js server and client, with in-process
 * fake backends (testing/fake-runners.ts): ModelStreamInfer for a decoupled model
 * (multiplexing, final flags, empty final responses, errors, cancellation,
 * response statistics), request parameters, model control and health Watch.
 * The real models are exercised in ../server.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../lib/log';
import { echoBackend, fakeGenerator, fakeGeneratorConfig, type FakeGeneratorLog } from '../testing/fake-runners';
import { InferenceCore } from '../core/inference-core';
import { loadTritonProto } from '../../protocol/triton/loader';
import { decodeBytesTensor, encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { ERROR_CODE_PARAMETER } from '../../protocol/triton/error-code';
import type {
  InferParameter,
  ModelInferResponse__Output as ModelInferResponse,
  ModelStatistics__Output as ModelStatistics,
  ModelStreamInferResponse__Output as ModelStreamInferResponse,
} from '../../protocol/triton/messages';
import { ModelRepository } from '../repository/repository';
import { createHealthHandlers, createInferenceHandlers } from './inference-service';
import { type TritonTestClient, call, callError, openStream, streamAll, tritonTestClient } from '../testing/test-client';

type Client = TritonTestClient;

const STEP_MS = 5;
const log: FakeGeneratorLog = { tokens: 0, instances: [] };
let root: string;
let core: InferenceCore;
let server: grpc.Server;
let client: Client;
let health: Client;

const generate = (prompt: string, id: string, parameters: Record<string, InferParameter> = {}) => ({
  model_name: 'gen',
  id,
  parameters,
  inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1] }],
  raw_input_contents: [encodeBytesTensor([prompt])],
});

const echo = (values: number[], parameters: Record<string, InferParameter> = {}) => ({
  model_name: 'echo',
  parameters,
  inputs: [{ name: 'x', datatype: 'FP32', shape: [values.length, 1] }],
  raw_input_contents: [Buffer.from(Float32Array.from(values).buffer)],
});

const isFinal = (r: ModelStreamInferResponse) => (r.infer_response?.parameters?.triton_final_response as { bool_param?: boolean } | undefined)?.bool_param === true;
function outputText(r: ModelStreamInferResponse, name: string): string | undefined {
  const response = r.infer_response!;
  const i = response.outputs.findIndex((o) => o.name === name);
  return i < 0 ? undefined : decodeBytesTensor(response.raw_output_contents[i], 1)[0].toString('utf8');
}

async function genStats(): Promise<ModelStatistics> {
  return (await call<{ model_stats: ModelStatistics[] }>(client, 'ModelStatistics', { name: 'gen' })).model_stats[0];
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-grpc-'));
  fs.mkdirSync(path.join(root, 'gen', '1'), { recursive: true });
  fs.writeFileSync(path.join(root, 'gen', 'config.pbtxt'), fakeGeneratorConfig('gen', 2));
  fs.mkdirSync(path.join(root, 'echo', '1'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'echo', 'config.pbtxt'),
    'name: "echo"\nmax_batch_size: 4\ninput [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\noutput [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\ndynamic_batching { priority_levels: 2 default_priority_level: 2 }\n',
  );
  const logger = createLogger({ test: 'grpc' });
  const repository = await ModelRepository.load({
    root,
    logger,
    cuda: false,
    selectBackend: (config) => (config.model_transaction_policy?.decoupled ? fakeGenerator(STEP_MS, log) : echoBackend),
  });
  core = new InferenceCore(repository);
  const pkg = loadTritonProto();
  server = new grpc.Server();
  server.addService(pkg.inference.GRPCInferenceService.service, createInferenceHandlers(core, logger));
  server.addService(pkg.grpc.health.v1.Health.service, createHealthHandlers(core));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))));
  core.markReady();
  client = tritonTestClient(`127.0.0.1:${port}`);
  health = new pkg.grpc.health.v1.Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Client;
});

afterAll(async () => {
  client?.close();
  health?.close();
  await core?.drainAndStop();
  server?.forceShutdown();
  fs.rmSync(root, { recursive: true, force: true });
});

/** Requests that fail in each way a streamed request can (unknown model, refused parameter, model failure), and one that succeeds. */
const failingRequests = () => [
  { ...generate('count:1', 'unknown'), model_name: 'nope' },
  generate('count:1', 'seq', { sequence_id: { int64_param: 7 } }),
  generate('count:3:fail-at:1', 'fails'),
  generate('count:1', 'fine'),
];

describe('ModelStreamInfer on a decoupled model', () => {
  it('multiplexes requests on one stream: each id gets its responses in order, only the last final', async () => {
    log.instances.length = 0;
    const responses = await streamAll(client, [generate('count:3', 'a'), generate('count:2', 'b'), generate('count:1', 'c')]);
    expect(responses.every((r) => r.error_message === '')).toBe(true);
    const byId = (id: string) => responses.filter((r) => r.infer_response!.id === id);
    for (const [id, n] of [
      ['a', 3],
      ['b', 2],
      ['c', 1],
    ] as const) {
      const mine = byId(id);
      expect(mine.map((r) => outputText(r, 'text_output'))).toEqual(Array.from({ length: n }, (_, i) => `t${i} `));
      expect(mine.map(isFinal)).toEqual(Array.from({ length: n }, (_, i) => i === n - 1));
      expect(outputText(mine[n - 1], 'finish_reason')).toBe('length');
      expect(mine[0].infer_response).toMatchObject({ model_name: 'gen', model_version: '1' });
    }
    expect(new Set(log.instances)).toEqual(new Set([0, 1])); // spread over the two instances
  });

  it('sends an empty final response only when triton_enable_empty_final_response asks for it', async () => {
    const asked = await streamAll(client, [generate('count:2:empty-final', 'e', { triton_enable_empty_final_response: { bool_param: true } })]);
    expect(asked.map(isFinal)).toEqual([false, false, true]);
    expect(asked[2].infer_response!.outputs).toEqual([]);
    const notAsked = await streamAll(client, [generate('count:2:empty-final', 'n')]);
    expect(notAsked.map((r) => outputText(r, 'text_output'))).toEqual(['t0 ', 't1 ']);
    expect(notAsked.map(isFinal)).toEqual([false, false]); // as in Triton: the flag-only response is not sent
  });

  it('reports errors as error_message with the request id, and keeps serving the stream', async () => {
    const responses = await streamAll(client, failingRequests());
    const byId = (id: string) => responses.filter((r) => r.infer_response?.id === id);
    expect(byId('unknown')).toEqual([expect.objectContaining({ error_message: "Request for unknown model: 'nope' is not found" })]);
    expect(byId('seq')[0].error_message).toBe(
      "parameter 'sequence_id' is not supported for model 'gen': the Sluice gpu-server has no sequence batcher (sequence_batching), so requests are stateless; expected no sequence_* parameters, got sequence_id=7",
    );
    expect(byId('fails').map((r) => r.error_message)).toEqual(['', 'model execution failed: fake failure at step 1']);
    expect(byId('fine').map(isFinal)).toEqual([true]);
  });

  it('names the gRPC status of each streamed error in the sluice_error_code parameter, and of nothing else', async () => {
    const responses = await streamAll(client, failingRequests());
    const codes = (id: string) => responses.filter((r) => r.infer_response?.id === id).map((r) => r.infer_response!.parameters[ERROR_CODE_PARAMETER]?.string_param);
    expect(codes('unknown')).toEqual(['NOT_FOUND']);
    expect(codes('seq')).toEqual(['INVALID_ARGUMENT']);
    expect(codes('fails')).toEqual([undefined, 'INTERNAL']);
    expect(codes('fine')).toEqual([undefined]);
  });

  it('cancelling the call stops generation within a step and the statistics count the cancellation', async () => {
    const before = await genStats();
    const stream = openStream(client);
    let received = 0;
    const closed = new Promise<void>((resolve) => {
      stream.on('data', () => {
        received++;
        if (received === 3) stream.cancel();
      });
      stream.on('error', () => resolve());
      stream.on('end', () => resolve());
    });
    stream.write(generate('count:100000', 'long-1'));
    stream.write(generate('count:100000', 'long-2'));
    await closed;
    await new Promise((resolve) => setTimeout(resolve, STEP_MS * 4));
    const tokensAfterCancel = log.tokens;
    await new Promise((resolve) => setTimeout(resolve, STEP_MS * 10));
    expect(log.tokens).toBe(tokensAfterCancel); // nothing runs on
    expect(
      core
        .instanceStatistics()
        .filter((i) => i.name === 'gen')
        .map((i) => i.activeSequences),
    ).toEqual([0, 0]);
    const after = await genStats();
    const cancels = (s: ModelStatistics) => Object.values(s.response_stats).reduce((n, r) => n + r.cancel!.count, 0);
    expect(cancels(after) - cancels(before)).toBe(2);
    expect(after.inference_stats!.fail!.count - before.inference_stats!.fail!.count).toBe(2);
  });

  it("keeps Triton's response_stats per response index and counts requests", async () => {
    const before = await genStats();
    await streamAll(client, [generate('count:2', 's1'), generate('count:2', 's2')]);
    const after = await genStats();
    expect(after.response_stats['0'].success!.count - (before.response_stats['0']?.success?.count ?? 0)).toBe(2);
    expect(after.response_stats['1'].success!.count - (before.response_stats['1']?.success?.count ?? 0)).toBe(2);
    expect(after.inference_count - before.inference_count).toBe(2);
    expect(after.inference_stats!.success!.count - before.inference_stats!.success!.count).toBe(2);
  });

  it('counts a request in the statistics before its final response goes out', async () => {
    // A client that reads the statistics once its stream ended must see its request (the tests above and the subgraphs' rely on it).
    const count = () => Number(core.statistics('gen')[0].inference_count);
    const before = count();
    const seen: Array<[boolean, number]> = [];
    const request = { modelName: 'gen', id: 'counted', inputs: [{ name: 'text_input', datatype: 'BYTES', shape: [1], data: encodeBytesTensor(['count:2']) }] };
    await core.inferStream(request, (response) => seen.push([response.final, count() - before]));
    expect(seen).toEqual([
      [false, 0],
      [true, 1],
    ]);
  });

  it('refuses ModelInfer for a decoupled model as Triton does', async () => {
    const error = await callError(client, 'ModelInfer', generate('count:1', 'x'));
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(error.details).toMatch(/^ModelInfer RPC doesn't support models with decoupled transaction policy: model 'gen' is decoupled/);
  });

  it('answers a non-decoupled model on the stream with one final response', async () => {
    const [only, ...rest] = await streamAll(client, [{ ...echo([5]), id: 'one' }]);
    expect(rest).toEqual([]);
    expect(isFinal(only)).toBe(true);
    expect(only.infer_response!.id).toBe('one');
  });
});

describe('request parameters over gRPC', () => {
  it('honours priority and timeout, maps a priority beyond the levels to the default as Triton does, refuses a malformed one', async () => {
    const ok = await call<ModelInferResponse>(client, 'ModelInfer', echo([1, 2], { priority: { uint64_param: 1 }, timeout: { int64_param: 1_000_000 } }));
    expect(ok.outputs[0].shape).toEqual([2, 1]);
    const beyond = await call<ModelInferResponse>(client, 'ModelInfer', echo([1], { priority: { int64_param: 3 } }));
    expect(beyond.outputs[0].shape).toEqual([1, 1]);
    const negative = await callError(client, 'ModelInfer', echo([1], { priority: { int64_param: -1 } }));
    expect(negative.code).toBe(grpc.status.INVALID_ARGUMENT);
    const text = await callError(client, 'ModelInfer', echo([1], { priority: { string_param: 'high' } }));
    expect(text.details).toBe(`parameter 'priority' for model 'echo' expects a non-negative integer (the priority level, 0 for the default), but got "high"`);
  });

  it('refuses sequence_* parameters, and accepts their "no sequence" values', async () => {
    const error = await callError(client, 'ModelInfer', echo([1], { sequence_start: { bool_param: true } }));
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error.details).toContain('got sequence_start=true');
    await expect(call(client, 'ModelInfer', echo([1], { sequence_id: { int64_param: 0 }, sequence_end: { bool_param: false } }))).resolves.toBeDefined();
  });
});

describe('model control over gRPC', () => {
  it('unloads (then refuses with UNAVAILABLE) and loads again from disk', async () => {
    await call(client, 'RepositoryModelUnload', { model_name: 'echo' });
    expect(await call(client, 'ModelReady', { name: 'echo' })).toEqual({ ready: false });
    const refused = await callError(client, 'ModelInfer', echo([1]));
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    expect(refused.details).toBe("Request for unknown model: 'echo' is not ready: unloaded");
    const { models } = await call<{ models: Array<Record<string, string>> }>(client, 'RepositoryIndex', {});
    expect(models.find((m) => m.name === 'echo')).toEqual({ name: 'echo', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' });
    await call(client, 'RepositoryModelLoad', { model_name: 'echo' });
    expect(await call(client, 'ModelReady', { name: 'echo' })).toEqual({ ready: true });
    await expect(call(client, 'ModelInfer', echo([1]))).resolves.toBeDefined();
  });

  it('refuses unknown models, load parameters and a bad config with the reason', async () => {
    const unknown = await callError(client, 'RepositoryModelLoad', { model_name: 'nope' });
    expect(unknown.code).toBe(grpc.status.NOT_FOUND);
    expect(unknown.details).toBe(`failed to load 'nope': the model repository ${root} has no model directory 'nope'`);
    expect((await callError(client, 'RepositoryModelUnload', { model_name: 'nope' })).code).toBe(grpc.status.NOT_FOUND);
    const withConfig = await callError(client, 'RepositoryModelLoad', { model_name: 'echo', parameters: { config: { string_param: '{}' } } });
    expect(withConfig.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await callError(client, 'RepositoryModelLoad', { model_name: '../etc' })).code).toBe(grpc.status.INVALID_ARGUMENT);

    fs.mkdirSync(path.join(root, 'late', '1'), { recursive: true });
    fs.writeFileSync(path.join(root, 'late', 'config.pbtxt'), 'name: "late"\nmax_batch_size: 2\ninstance_group [ { count: 0 } ]\n');
    const bad = await callError(client, 'RepositoryModelLoad', { model_name: 'late' });
    expect(bad.code).toBe(grpc.status.INTERNAL);
    expect(bad.details).toContain(`failed to load 'late': ${path.join(root, 'late', 'config.pbtxt')}: at least one input is required`);
    const { models } = await call<{ models: Array<Record<string, string>> }>(client, 'RepositoryIndex', {});
    expect(models.find((m) => m.name === 'late')).toMatchObject({ state: 'UNAVAILABLE', reason: expect.stringContaining('at least one input is required') });
  });

  it('answers the RPCs it does not implement with UNIMPLEMENTED and the reason', async () => {
    const error = await callError(client, 'SystemSharedMemoryRegister', { name: 'r' });
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(error.details).toBe('SystemSharedMemoryRegister is not implemented by the Sluice gpu-server: shared-memory tensors are not supported; send tensors in raw_input_contents');
  });
});

describe('grpc.health.v1 Watch', () => {
  it('streams SERVING, then NOT_SERVING when the server drains, and ends when it stops', async () => {
    const statuses: string[] = [];
    const unknownStatuses: string[] = [];
    const watch = health.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      (v: unknown) => (loadTritonProto().grpc.health.v1.Health.service.Watch.requestSerialize as (v: unknown) => Buffer)(v),
      (b: Buffer) => (loadTritonProto().grpc.health.v1.Health.service.Watch.responseDeserialize as (b: Buffer) => { status: string })(b),
      { service: '' },
    );
    const unknown = health.makeServerStreamRequest(
      '/grpc.health.v1.Health/Watch',
      (v: unknown) => (loadTritonProto().grpc.health.v1.Health.service.Watch.requestSerialize as (v: unknown) => Buffer)(v),
      (b: Buffer) => (loadTritonProto().grpc.health.v1.Health.service.Watch.responseDeserialize as (b: Buffer) => { status: string })(b),
      { service: 'other.Service' },
    );
    unknown.on('data', (r: { status: string }) => unknownStatuses.push(r.status));
    const ended = new Promise<void>((resolve, reject) => {
      watch.on('data', (r: { status: string }) => statuses.push(r.status));
      watch.on('end', resolve);
      watch.on('error', reject);
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(statuses).toEqual(['SERVING']);
    await core.drainAndStop();
    await ended;
    expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
    expect(unknownStatuses).toEqual(['SERVICE_UNKNOWN']);
  });
});
