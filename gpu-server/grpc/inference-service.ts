/**
 * The gRPC adapter: Triton's GRPCInferenceService and grpc.health.v1 on top of
 * the InferenceCore. Handlers only translate messages and errors.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../lib/log';
import type { CoreInferResponse, InferenceCore } from '../core/inference-core';
import { TRITON_SERVICE_NAME } from '../proto/load';
import type {
  ModelInferRequest,
  ModelInferResponse,
  ModelStatisticsResponse,
  NameVersionRequest,
  RepositoryIndexRequest,
} from '../protocol/messages';
import { toServiceError } from './status';
import { inputsFromRequest } from './tensors';

type Handler = grpc.UntypedHandleCall;

/** RPCs declared by the proto that this server answers with UNIMPLEMENTED. */
export const UNIMPLEMENTED_RPCS = [
  'RepositoryModelLoad',
  'RepositoryModelUnload',
  'SystemSharedMemoryStatus',
  'SystemSharedMemoryRegister',
  'SystemSharedMemoryUnregister',
  'CudaSharedMemoryStatus',
  'CudaSharedMemoryRegister',
  'CudaSharedMemoryUnregister',
  'TraceSetting',
  'LogSettings',
] as const;

function unary<Req, Res>(logger: Logger, rpc: string, fn: (request: Req) => Res | Promise<Res>): Handler {
  return ((call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (response) => callback(null, response),
        (error: unknown) => {
          const serviceError = toServiceError(error);
          if (serviceError.code === grpc.status.INTERNAL) logger.error('rpc failed', { rpc, error: serviceError.details });
          callback(serviceError, null);
        },
      );
  }) as Handler;
}

export function toInferResponse(response: CoreInferResponse): ModelInferResponse {
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id,
    parameters: {},
    outputs: response.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    raw_output_contents: response.outputs.map((t) => t.data),
  };
}

function coreRequest(request: ModelInferRequest) {
  return {
    modelName: request.model_name,
    modelVersion: request.model_version,
    id: request.id,
    inputs: inputsFromRequest(request),
    outputs: (request.outputs ?? []).map((o) => o.name),
  };
}

/** Handlers for every RPC of inference.GRPCInferenceService. */
export function createInferenceHandlers(core: InferenceCore, logger: Logger): grpc.UntypedServiceImplementation {
  const handlers: grpc.UntypedServiceImplementation = {
    ServerLive: unary(logger, 'ServerLive', () => ({ live: core.isLive() })),
    ServerReady: unary(logger, 'ServerReady', () => ({ ready: core.isReady() })),
    ServerMetadata: unary(logger, 'ServerMetadata', () => core.serverMetadata()),
    ModelReady: unary(logger, 'ModelReady', (r: NameVersionRequest) => ({ ready: core.modelReady(r.name, r.version) })),
    ModelMetadata: unary(logger, 'ModelMetadata', (r: NameVersionRequest) => core.modelMetadata(r.name, r.version)),
    ModelConfig: unary(logger, 'ModelConfig', (r: NameVersionRequest) => ({ config: core.modelConfig(r.name, r.version) })),
    RepositoryIndex: unary(logger, 'RepositoryIndex', (r: RepositoryIndexRequest) => ({ models: core.repositoryIndex(r.ready) })),
    ModelStatistics: unary(logger, 'ModelStatistics', (r: NameVersionRequest): ModelStatisticsResponse => ({ model_stats: core.statistics(r.name, r.version) })),
    ModelInfer: unary(logger, 'ModelInfer', async (r: ModelInferRequest) => toInferResponse(await core.infer(coreRequest(r)))),
    // Non-decoupled models over the stream: one response (or error message)
    // per request, in completion order; decoupled models arrive with issue 3.
    ModelStreamInfer: ((call: grpc.ServerDuplexStream<ModelInferRequest, unknown>) => {
      let pending = 0;
      let ended = false;
      const maybeEnd = () => {
        if (ended && pending === 0) call.end();
      };
      call.on('data', (request: ModelInferRequest) => {
        pending++;
        Promise.resolve()
          .then(() => core.infer(coreRequest(request)))
          .then(
            (response) => call.write({ error_message: '', infer_response: toInferResponse(response) }),
            (error: unknown) => call.write({ error_message: toServiceError(error).details, infer_response: null }),
          )
          .finally(() => {
            pending--;
            maybeEnd();
          });
      });
      call.on('end', () => {
        ended = true;
        maybeEnd();
      });
      call.on('error', () => undefined); // cancelled by the client: nothing to clean up yet
    }) as Handler,
  };
  for (const rpc of UNIMPLEMENTED_RPCS) {
    handlers[rpc] = ((_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
      callback({ code: grpc.status.UNIMPLEMENTED, details: `${rpc} is not implemented by the Sluice gpu-server` }, null)) as Handler;
  }
  return handlers;
}

/** grpc.health.v1: SERVING while the core is ready, for '' and the Triton service. */
export function createHealthHandlers(core: InferenceCore): grpc.UntypedServiceImplementation {
  return {
    Check: ((call: grpc.ServerUnaryCall<{ service: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const service = call.request.service;
      if (service !== '' && service !== TRITON_SERVICE_NAME) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service '${service}'; expected '' or '${TRITON_SERVICE_NAME}'` }, null);
        return;
      }
      callback(null, { status: core.isReady() ? 'SERVING' : 'NOT_SERVING' });
    }) as Handler,
    Watch: ((call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'Watch is not implemented by the Sluice gpu-server; poll Check instead' });
    }) as Handler,
  };
}
