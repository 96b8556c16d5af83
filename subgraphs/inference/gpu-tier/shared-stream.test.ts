/**
 * The shared ModelStreamInfer call against a real gRPC server on loopback
 * whose ModelStreamInfer handler the test scripts (the module under test is
 * the client side; the gpu-server's own handler is tested in gpu-server/).
 */
import * as grpc from '@grpc/grpc-js';
import type { ModelInferRequest, ModelInferResponse__Output as ModelInferResponse, ModelStreamInferResponse } from '../../../protocol/triton/messages';
import { errorCodeParameter } from '../../../protocol/triton/error-code';
import { loadTritonProto } from '../../../protocol/triton/loader';
import { CANCEL_PARAMETER, SharedInferStream, type StreamError } from './shared-stream';
import { freePort } from '../../../scripts/free-port';
import { TritonClient } from './triton-client';
import { outputTensor } from '../testing/triton-messages';

type Call = grpc.ServerDuplexStream<ModelInferRequest, ModelStreamInferResponse>;

let server: grpc.Server;
let client: TritonClient;
const calls: Call[] = [];
const received: ModelInferRequest[] = [];

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(loadTritonProto().inference.GRPCInferenceService.service, {
    ModelStreamInfer: (call: Call) => {
      calls.push(call);
      call.on('data', (r: ModelInferRequest) => received.push(r));
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  client = new TritonClient(`127.0.0.1:${port}`, 5_000);
});

afterAll(() => {
  client.close();
  server.forceShutdown();
});

beforeEach(() => {
  calls.length = 0;
  received.length = 0;
});

const request = (id: string): ModelInferRequest => ({ model_name: 'm', id, inputs: [] });
const response = (id: string, text: string, final: boolean): ModelStreamInferResponse => ({
  error_message: '',
  infer_response: { model_name: 'm', model_version: '1', id, parameters: { triton_final_response: { bool_param: final } }, outputs: [outputTensor(text, 'BYTES', [1])], raw_output_contents: [] },
});

function recorder() {
  const events: Array<{ name?: string; final?: boolean; error?: StreamError }> = [];
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  return {
    events,
    finished,
    route: {
      response: (r: ModelInferResponse, final: boolean) => {
        events.push({ name: r.outputs[0]?.name, final });
        if (final) done();
      },
      error: (error: StreamError) => {
        events.push({ error });
        done();
      },
    },
  };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
};

/** A new shared stream with requests `a` and `b` written on it and seen by the server. */
async function twoRequests() {
  const stream = new SharedInferStream(client);
  const a = recorder();
  const b = recorder();
  stream.start(request('a'), a.route);
  stream.start(request('b'), b.route);
  await until(() => received.length === 2);
  return { stream, a, b };
}

const serverError = (id: string, message: string, parameters: ReturnType<typeof errorCodeParameter> = {}): ModelStreamInferResponse => ({
  error_message: message,
  infer_response: { model_name: 'm', model_version: '', id, parameters, outputs: [], raw_output_contents: [] },
});

it('carries many requests on one call and routes interleaved responses by id', async () => {
  const { stream, a, b } = await twoRequests();
  expect(calls).toHaveLength(1);
  const call = calls[0];
  call.write(response('b', 'b1', false));
  call.write(response('a', 'a1', false));
  call.write(response('b', 'b2', true));
  call.write(response('a', 'a2', true));
  await Promise.all([a.finished, b.finished]);
  expect(a.events).toEqual([
    { name: 'a1', final: false },
    { name: 'a2', final: true },
  ]);
  expect(b.events).toEqual([
    { name: 'b1', final: false },
    { name: 'b2', final: true },
  ]);
  expect(stream.active).toBe(0);
  stream.close();
});

it('reads the gRPC status a server error names in sluice_error_code, and none from a server that sends no code (NVIDIA Triton)', async () => {
  const { stream, a: coded, b: plain } = await twoRequests();
  const tooLong = 'the prompt has 1100 tokens; the context length is 1024';
  calls[0].write(serverError('a', tooLong, errorCodeParameter(grpc.status.INVALID_ARGUMENT)));
  calls[0].write(serverError('b', tooLong));
  await Promise.all([coded.finished, plain.finished]);
  expect(coded.events[0].error).toMatchObject({ transport: false, status: grpc.status.INVALID_ARGUMENT });
  expect(plain.events[0].error).toMatchObject({ transport: false });
  expect(plain.events[0].error!.status).toBeUndefined();
  stream.close();
});

it('routes a server error message to its request only, as a non-transport error', async () => {
  const { stream, a, b } = await twoRequests();
  calls[0].write(serverError('a', "unexpected datatype for input 'x'"));
  await a.finished;
  expect(a.events[0].error).toMatchObject({ message: "unexpected datatype for input 'x'", transport: false });
  expect(stream.active).toBe(1);
  calls[0].write(response('b', 'b1', true));
  await b.finished;
  stream.close();
});

it('fails every live request at once when the call breaks, and the next request opens a new call', async () => {
  const transportErrors: StreamError[] = [];
  const stream = new SharedInferStream(client, (e) => transportErrors.push(e));
  const a = recorder();
  const b = recorder();
  stream.start(request('a'), a.route);
  stream.start(request('b'), b.route);
  await until(() => received.length === 2);
  calls[0].end(); // the server closes the call with requests still open (a crash is covered end to end)
  await Promise.all([a.finished, b.finished]);
  // The server had the requests: they may have started, so they must not be run elsewhere.
  for (const r of [a, b]) expect(r.events[0].error).toMatchObject({ transport: true, neverStarted: false });
  expect(transportErrors.length).toBeGreaterThan(0);
  expect([stream.started, stream.failed]).toEqual([2, 2]);

  const c = recorder();
  stream.start(request('c'), c.route);
  await until(() => calls.length === 2 && received.length === 3);
  calls[1].write(response('c', 'c1', true));
  await c.finished;
  stream.close();
});

it('cancels one request with a cancel message on the same call, and drops its later responses', async () => {
  const stream = new SharedInferStream(client);
  const a = recorder();
  const b = recorder();
  const cancelA = stream.start(request('a'), a.route);
  stream.start(request('b'), b.route);
  await until(() => received.length === 2);
  cancelA();
  await until(() => received.length === 3);
  expect(received[2]).toMatchObject({ id: 'a', model_name: 'm', inputs: [] });
  expect(received[2].parameters?.[CANCEL_PARAMETER]).toMatchObject({ bool_param: true });
  calls[0].write(response('a', 'late', true));
  calls[0].write(response('b', 'b1', true));
  await b.finished;
  expect(a.events).toEqual([]);
  expect(calls).toHaveLength(1);
  stream.close();
});

it('marks the failure as never started when the call could not reach a server', async () => {
  const nowhere = new TritonClient(`127.0.0.1:${await freePort()}`, 1_000);
  const stream = new SharedInferStream(nowhere);
  const a = recorder();
  stream.start(request('a'), a.route);
  await a.finished;
  expect(a.events[0].error).toMatchObject({ transport: true, neverStarted: true });
  expect([stream.started, stream.failed]).toEqual([1, 1]);
  nowhere.close();
});
