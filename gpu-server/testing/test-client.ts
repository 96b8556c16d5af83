/**
 * A plain grpc-js client of Triton's service for the gpu-server's tests: the
 * unary calls as promises, and ModelStreamInfer as a raw duplex stream.
 */
import * as grpc from '@grpc/grpc-js';
import { loadTritonProto } from '../../protocol/triton/loader';
import type { ModelStreamInferResponse__Output as ModelStreamInferResponse } from '../../protocol/triton/messages';

export type TritonTestClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function tritonTestClient(address: string): TritonTestClient {
  return new (loadTritonProto().inference.GRPCInferenceService)(address, grpc.credentials.createInsecure()) as unknown as TritonTestClient;
}

export function call<T = Record<string, unknown>>(target: TritonTestClient, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    (target[method] as (r: unknown, cb: (e: grpc.ServiceError | null, v: T) => void) => void).call(target, request, (error, value) => (error ? reject(error) : resolve(value)));
  });
}

/** The error of a call that must fail; a success fails the test. */
export async function callError(target: TritonTestClient, method: string, request: unknown): Promise<grpc.ServiceError> {
  try {
    await call(target, method, request);
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error(`${method} was expected to fail but succeeded`);
}

export function openStream(target: TritonTestClient): grpc.ClientDuplexStream<unknown, ModelStreamInferResponse> {
  const definition = loadTritonProto().inference.GRPCInferenceService.service.ModelStreamInfer;
  return target.makeBidiStreamRequest(
    '/inference.GRPCInferenceService/ModelStreamInfer',
    definition.requestSerialize as (v: unknown) => Buffer,
    definition.responseDeserialize as (b: Buffer) => ModelStreamInferResponse,
  );
}

/** Writes `requests` on one ModelStreamInfer call, half-closes it, and collects every response until the server ends it. */
export async function streamAll(target: TritonTestClient, requests: readonly unknown[]): Promise<ModelStreamInferResponse[]> {
  const stream = openStream(target);
  const responses: ModelStreamInferResponse[] = [];
  const done = new Promise<void>((resolve, reject) => {
    stream.on('data', (r: ModelStreamInferResponse) => responses.push(r));
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  for (const r of requests) stream.write(r);
  stream.end();
  await done;
  return responses;
}
