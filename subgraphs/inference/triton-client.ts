import * as grpc from '@grpc/grpc-js';
import type {
  ModelConfigResponse,
  ModelInferRequest,
  ModelInferResponse,
  ModelStatisticsResponse,
  ModelStreamInferResponse,
  RepositoryIndexResponse,
} from '../../gpu-server/protocol/messages';
import { loadTritonProto } from '../../gpu-server/proto/load';

/** The unary calls the inference subgraph makes: one endpoint, or a tier of them. */
export interface TritonApi {
  serverReady(): Promise<{ ready: boolean }>;
  repositoryIndex(): Promise<RepositoryIndexResponse>;
  modelConfig(name: string, version?: string): Promise<ModelConfigResponse>;
  modelInfer(request: ModelInferRequest, deadlineMs?: number): Promise<ModelInferResponse>;
}

/**
 * A typed, promise-based client for Triton's GRPCInferenceService. It speaks
 * only the standard protocol, so it works unchanged against NVIDIA's Triton
 * and against our gpu-server. Every call has a deadline: a GPU tier that stops
 * answering yields an error, never a hang.
 */
export class TritonClient implements TritonApi {
  private readonly client: grpc.Client & Record<string, grpc.MethodDefinition<unknown, unknown> | unknown>;

  constructor(
    readonly address: string,
    private readonly deadlineMs: number,
  ) {
    const Service = loadTritonProto().inference.GRPCInferenceService;
    this.client = new Service(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': 30_000,
      // After a connection fails, grpc-js waits before trying again, doubling up to 120 s by default: an
      // endpoint that restarted would stay out of the router that long. Its probes retry every few seconds anyway.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2_000,
    }) as TritonClient['client'];
  }

  serverReady(): Promise<{ ready: boolean }> {
    return this.unary('ServerReady', {});
  }

  repositoryIndex(): Promise<RepositoryIndexResponse> {
    return this.unary('RepositoryIndex', { repository_name: '', ready: false });
  }

  modelConfig(name: string, version = ''): Promise<ModelConfigResponse> {
    return this.unary('ModelConfig', { name, version });
  }

  modelReady(name: string, version = ''): Promise<{ ready: boolean }> {
    return this.unary('ModelReady', { name, version });
  }

  modelStatistics(name = '', version = ''): Promise<ModelStatisticsResponse> {
    return this.unary('ModelStatistics', { name, version });
  }

  /** Model control (Triton's explicit mode): load or reload a model from the repository. */
  repositoryModelLoad(name: string): Promise<Record<string, never>> {
    return this.unary('RepositoryModelLoad', { repository_name: '', model_name: name });
  }

  repositoryModelUnload(name: string): Promise<Record<string, never>> {
    return this.unary('RepositoryModelUnload', { repository_name: '', model_name: name });
  }

  modelInfer(request: ModelInferRequest, deadlineMs = this.deadlineMs): Promise<ModelInferResponse> {
    return this.unary('ModelInfer', request, deadlineMs);
  }

  /**
   * Opens a ModelStreamInfer call. It has no deadline (it is meant to live
   * long and carry many requests); each request's own deadline is the
   * caller's to enforce.
   */
  modelStreamInfer(): grpc.ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse> {
    const open = this.client.ModelStreamInfer as (metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse>;
    return open.call(this.client, new grpc.Metadata(), {});
  }

  /** The channel is connected (or idle and able to connect). */
  get connected(): boolean {
    return this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  close(): void {
    this.client.close();
  }

  private unary<T>(method: string, request: unknown, deadlineMs = this.deadlineMs): Promise<T> {
    const call = this.client[method] as (
      request: unknown,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, response: T) => void,
    ) => void;
    return new Promise((resolve, reject) =>
      call.call(this.client, request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }
}

export function isGrpcError(error: unknown): error is grpc.ServiceError {
  return typeof error === 'object' && error !== null && 'code' in error && 'details' in error;
}

export { status as GrpcStatus } from '@grpc/grpc-js';

/** A failure of the endpoint or the network, as opposed to the server's answer. */
export function isTransportFailure(error: unknown): boolean {
  return (
    isGrpcError(error) &&
    (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED || error.code === grpc.status.INTERNAL || error.code === grpc.status.UNKNOWN)
  );
}

/**
 * The call provably never reached a model: grpc-js never placed it on a
 * connection ("No connection established", a refused HTTP/2 stream, a closed
 * channel), or the server refused it before queueing (a gpu-server that is
 * draining or stopped, a model not ready there). Only these may run
 * elsewhere. "Connection dropped" is not among them: the server may have
 * started the request before its connection broke, and the status (an empty
 * UNAVAILABLE) cannot tell, so it is never retried.
 */
export function neverStarted(error: unknown): boolean {
  return isGrpcError(error) && error.code === grpc.status.UNAVAILABLE && NEVER_STARTED.test(error.details ?? '');
}

/** The server answered that the model (or the whole server) takes no requests now. */
export function refusedAsNotReady(error: unknown): boolean {
  return isGrpcError(error) && error.code === grpc.status.UNAVAILABLE && SERVER_REFUSED.test(error.details ?? '');
}

const SERVER_REFUSED = /accepts no inference requests|is not ready|not available/i;
const NEVER_STARTED = new RegExp(`No connection established|Stream refused by server|Channel closed before call started|${SERVER_REFUSED.source}`, 'i');
