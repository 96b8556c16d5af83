/**
 * The gRPC adapter: Triton's GRPCInferenceService and grpc.health.v1 on top of
 * the InferenceCore. Handlers only translate messages and errors.
 */
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../lib/log';
import type { CoreInferRequest, CoreInferResponse, CoreStreamResponse, InferenceCore, ServerPhase } from '../core/inference-core';
import { TRITON_SERVICE_NAME } from '../../protocol/triton/loader';
import { CANCEL_REQUEST_PARAMETER } from '../../protocol/triton/cancel';
import { errorCodeParameter } from '../../protocol/triton/error-code';
import type { GRPCInferenceServiceHandlers, HealthHandlers, ModelInferRequest__Output as ModelInferRequest, ModelInferResponse, ModelStreamInferResponse } from '../../protocol/triton/messages';
import { parametersFromProto, parametersToProto } from './parameters';
import { invalidArgument } from '../core/errors';
import { toServiceError, type CoreServiceError } from './status';
import { inputsFromRequest } from './tensors';

/**
 * RPCs declared by the proto that this server answers with UNIMPLEMENTED, and
 * why: tensors travel in the request messages only, and tracing and logging
 * are configured by environment (SLUICE_LOG_LEVEL), not at run time.
 */
const UNIMPLEMENTED_RPCS = {
  SystemSharedMemoryStatus: 'shared-memory tensors are not supported; send tensors in raw_input_contents',
  SystemSharedMemoryRegister: 'shared-memory tensors are not supported; send tensors in raw_input_contents',
  SystemSharedMemoryUnregister: 'shared-memory tensors are not supported; send tensors in raw_input_contents',
  CudaSharedMemoryStatus: 'CUDA shared-memory tensors are not supported; send tensors in raw_input_contents',
  CudaSharedMemoryRegister: 'CUDA shared-memory tensors are not supported; send tensors in raw_input_contents',
  CudaSharedMemoryUnregister: 'CUDA shared-memory tensors are not supported; send tensors in raw_input_contents',
  TraceSetting: 'tracing is not supported',
  LogSettings: 'log settings cannot be changed at run time; set SLUICE_LOG_LEVEL (debug, info, warn, error) and SLUICE_LOG_FORMAT=json in the environment',
} as const;

/** What RepositoryModelLoad and RepositoryModelUnload requests have in common. */
interface RepositoryModelRequest {
  repository_name: string;
  model_name: string;
  parameters: Record<string, unknown>;
}

function unary<Req, Res>(logger: Logger, rpc: string, fn: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request, call))
      .then(
        (response) => callback(null, response),
        (error: unknown) => {
          const serviceError = toServiceError(error);
          if (serviceError.code === grpc.status.INTERNAL) logger.error('rpc failed', { rpc, error: serviceError.details });
          callback(serviceError, null);
        },
      );
  };
}

function unimplemented<Req, Res>(rpc: keyof typeof UNIMPLEMENTED_RPCS): grpc.handleUnaryCall<Req, Res> {
  return (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: `${rpc} is not implemented by the Sluice gpu-server: ${UNIMPLEMENTED_RPCS[rpc]}` }, null);
}

export function toInferResponse(response: CoreInferResponse): ModelInferResponse {
  return {
    model_name: response.modelName,
    model_version: response.modelVersion,
    id: response.id,
    parameters: parametersToProto(response.parameters),
    outputs: response.outputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
    raw_output_contents: response.outputs.map((t) => t.data),
  };
}

/** A streamed response: the data response, with `triton_final_response` among its parameters. */
export function toStreamResponse(response: CoreStreamResponse): ModelStreamInferResponse {
  return { error_message: '', infer_response: toInferResponse(response) };
}

/**
 * A streamed error: the message, the request it belongs to (clients match
 * responses to requests by id), and the status a unary call would have failed
 * with, as the `sluice_error_code` parameter (protocol/triton/error-code.ts).
 */
function toStreamError(request: ModelInferRequest, serviceError: CoreServiceError): ModelStreamInferResponse {
  return {
    error_message: serviceError.details,
    infer_response: {
      model_name: request.model_name,
      model_version: request.model_version,
      id: request.id,
      parameters: { ...parametersToProto({ triton_final_response: true }), ...errorCodeParameter(serviceError.code) },
      outputs: [],
      raw_output_contents: [],
    },
  };
}

function coreRequest(request: ModelInferRequest): CoreInferRequest {
  return {
    modelName: request.model_name,
    modelVersion: request.model_version,
    id: request.id,
    inputs: inputsFromRequest(request),
    outputs: (request.outputs ?? []).map((o) => o.name),
    parameters: parametersFromProto(request.parameters),
  };
}

/** The model named by a RepositoryModelLoad/Unload request; refuses what this server cannot do. */
function repositoryTarget(rpc: string, request: RepositoryModelRequest): string {
  // unload_dependents concerns ensembles, which this server has none of: accepted and moot.
  const keys = Object.keys(request.parameters ?? {}).filter((k) => k !== 'unload_dependents');
  if (keys.length) {
    throw invalidArgument(`${rpc} parameters are not supported (the model is read from the repository on disk); expected none, got ${keys.join(', ')}`);
  }
  if (request.repository_name) throw invalidArgument(`${rpc}: this server has one model repository; expected an empty repository_name, got '${request.repository_name}'`);
  return request.model_name;
}

/**
 * ModelStreamInfer: requests are multiplexed on one call and each may get
 * several responses (decoupled models), matched by the request `id` echoed in
 * each. Errors travel as `error_message` on the stream, which stays open.
 * The client cancelling the call aborts every request of the call still
 * running (a generating model stops within one decode step); the call ends
 * once the client has half-closed and every request has finished. One request
 * can be cancelled alone with a Sluice cancel message (protocol/triton/cancel.ts).
 */
function streamInfer(core: InferenceCore, logger: Logger): GRPCInferenceServiceHandlers['ModelStreamInfer'] {
  return (call) => {
    const running = new Set<AbortController>();
    const byId = new Map<string, AbortController>();
    let ended = false;
    let cancelled = false;
    const write = (message: ModelStreamInferResponse) => {
      if (!cancelled) call.write(message);
    };
    const maybeEnd = () => {
      if (ended && running.size === 0 && !cancelled) call.end();
    };
    call.on('data', (request: ModelInferRequest) => {
      if (isCancelRequest(request)) {
        byId.get(request.id ?? '')?.abort();
        return;
      }
      const controller = new AbortController();
      running.add(controller);
      if (request.id) byId.set(request.id, controller);
      Promise.resolve()
        .then(() => core.inferStream(coreRequest(request), (response) => write(toStreamResponse(response)), controller.signal))
        .catch((error: unknown) => {
          if (controller.signal.aborted) return;
          const serviceError = toServiceError(error);
          if (serviceError.code === grpc.status.INTERNAL) logger.error('stream request failed', { model: request.model_name, error: serviceError.details });
          write(toStreamError(request, serviceError));
        })
        .finally(() => {
          running.delete(controller);
          if (byId.get(request.id ?? '') === controller) byId.delete(request.id!);
          maybeEnd();
        });
    });
    // A draining server ends the call once its requests have finished, as if
    // the client had half-closed: a long-lived shared stream must not hold
    // the server's shutdown open.
    const stopListening = core.onPhaseChange((phase) => {
      if (phase === 'ready') return;
      ended = true;
      maybeEnd();
    });
    call.on('end', () => {
      ended = true;
      maybeEnd();
    });
    call.on('cancelled', () => {
      cancelled = true;
      for (const controller of running) controller.abort();
    });
    call.on('close', stopListening);
    call.on('error', () => undefined); // a broken connection also raises 'cancelled', handled above
  };
}

/** A Sluice cancel message for one request of the call (see protocol/cancel.ts). */
function isCancelRequest(request: ModelInferRequest): boolean {
  return request.parameters[CANCEL_REQUEST_PARAMETER]?.bool_param === true;
}

/** Handlers for every RPC of inference.GRPCInferenceService. */
export function createInferenceHandlers(core: InferenceCore, logger: Logger): GRPCInferenceServiceHandlers {
  return {
    ServerLive: unary(logger, 'ServerLive', () => ({ live: core.isLive() })),
    ServerReady: unary(logger, 'ServerReady', () => ({ ready: core.isReady() })),
    ServerMetadata: unary(logger, 'ServerMetadata', () => core.serverMetadata()),
    ModelReady: unary(logger, 'ModelReady', (r) => ({ ready: core.modelReady(r.name, r.version) })),
    ModelMetadata: unary(logger, 'ModelMetadata', (r) => core.modelMetadata(r.name, r.version)),
    ModelConfig: unary(logger, 'ModelConfig', (r) => ({ config: core.modelConfig(r.name, r.version) })),
    RepositoryIndex: unary(logger, 'RepositoryIndex', (r) => ({ models: core.repositoryIndex(r.ready) })),
    RepositoryModelLoad: unary(logger, 'RepositoryModelLoad', async (r) => {
      await core.loadModel(repositoryTarget('RepositoryModelLoad', r));
      return {};
    }),
    RepositoryModelUnload: unary(logger, 'RepositoryModelUnload', async (r) => {
      await core.unloadModel(repositoryTarget('RepositoryModelUnload', r));
      return {};
    }),
    ModelStatistics: unary(logger, 'ModelStatistics', (r) => ({ model_stats: core.statistics(r.name, r.version) })),
    ModelInfer: unary(logger, 'ModelInfer', async (r, call) => {
      // A client that cancels (or times out) while its request is queued frees its place. grpc-js also
      // emits 'cancelled' when the stream closes after a normal answer: the listener is gone by then,
      // so an answered call costs no abort (and no DOMException for its reason).
      const controller = new AbortController();
      const abort = () => controller.abort();
      call.once('cancelled', abort);
      try {
        return toInferResponse(await core.infer(coreRequest(r), controller.signal));
      } finally {
        call.off('cancelled', abort);
      }
    }),
    ModelStreamInfer: streamInfer(core, logger),
    SystemSharedMemoryStatus: unimplemented('SystemSharedMemoryStatus'),
    SystemSharedMemoryRegister: unimplemented('SystemSharedMemoryRegister'),
    SystemSharedMemoryUnregister: unimplemented('SystemSharedMemoryUnregister'),
    CudaSharedMemoryStatus: unimplemented('CudaSharedMemoryStatus'),
    CudaSharedMemoryRegister: unimplemented('CudaSharedMemoryRegister'),
    CudaSharedMemoryUnregister: unimplemented('CudaSharedMemoryUnregister'),
    TraceSetting: unimplemented('TraceSetting'),
    LogSettings: unimplemented('LogSettings'),
  };
}

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** grpc.health.v1: SERVING while the core is ready, for '' and the Triton service. */
export function createHealthHandlers(core: InferenceCore): HealthHandlers {
  const known = (service: string) => service === '' || service === TRITON_SERVICE_NAME;
  const statusOf = (phase: ServerPhase): ServingStatus => (phase === 'ready' ? 'SERVING' : 'NOT_SERVING');
  return {
    Check: (call, callback) => {
      const service = call.request.service;
      if (!known(service)) {
        callback({ code: grpc.status.NOT_FOUND, details: `unknown service '${service}'; expected '' or '${TRITON_SERVICE_NAME}'` }, null);
        return;
      }
      callback(null, { status: statusOf(core.phase) });
    },
    // As the health protocol asks: the current status at once, then each change, until the client cancels;
    // an unknown service is SERVICE_UNKNOWN (it might appear later), not an error.
    Watch: (call) => {
      const serviceKnown = known(call.request.service);
      let last: ServingStatus = serviceKnown ? statusOf(core.phase) : 'SERVICE_UNKNOWN';
      call.write({ status: last });
      const unsubscribe = core.onPhaseChange((phase) => {
        const status = serviceKnown ? statusOf(phase) : 'SERVICE_UNKNOWN';
        if (status !== last) call.write({ status });
        last = status;
        // A stopped server ends its watches, or its graceful shutdown would wait for them forever.
        if (phase === 'stopped') {
          unsubscribe();
          call.end();
        }
      });
      call.on('cancelled', unsubscribe);
    },
  };
}
