import * as grpc from '@grpc/grpc-js';
import type {
  GRPCInferenceServiceClient,
  ModelConfigResponse__Output,
  ModelInferRequest,
  ModelInferResponse__Output,
  ModelStatisticsResponse__Output,
  ModelStreamInferResponse__Output,
  RepositoryIndexResponse__Output,
} from '../../../protocol/triton/messages';
import { loadTritonProto } from '../../../protocol/triton/loader';
import { ConfigError, envSecret } from '../../../lib/config';

/** The unary calls the inference subgraph makes: one endpoint, or a tier of them. */
export interface TritonApi {
  serverReady(): Promise<{ ready: boolean }>;
  repositoryIndex(): Promise<RepositoryIndexResponse__Output>;
  modelConfig(name: string, version?: string): Promise<ModelConfigResponse__Output>;
  modelInfer(request: ModelInferRequest, deadlineMs?: number): Promise<ModelInferResponse__Output>;
}

/** A ModelStreamInfer call as the client sees it: it writes requests and reads decoded responses. */
export type InferStreamCall = grpc.ClientDuplexStream<ModelInferRequest, ModelStreamInferResponse__Output>;

/** Starts one unary call of the generated client with the given metadata, options and callback. */
type UnaryCall<Res> = (metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

/**
 * A typed, promise-based client for Triton's GRPCInferenceService. It speaks
 * only the standard protocol, so it works unchanged against NVIDIA's Triton
 * and against our gpu-server. Every call has a deadline: a GPU tier that stops
 * answering yields an error, never a hang.
 *
 * Every call carries the restricted-protocol key when one is configured
 * (`restrictedKey`, else `INFERENCE_GPU_SERVER_KEY` or its `_FILE`, as
 * `<key>=<value>`): the metadata `triton-grpc-protocol-<key>: <value>` that a
 * Triton or gpu-server started with `--grpc-restricted-protocol=…:<key>=<value>` demands.
 */
export class TritonClient implements TritonApi {
  private readonly client: GRPCInferenceServiceClient;
  /** What every call carries: the restricted-protocol header, or nothing. */
  private readonly metadata = new grpc.Metadata();

  constructor(
    readonly address: string,
    private readonly deadlineMs: number,
    restrictedKey = envSecret('INFERENCE_GPU_SERVER_KEY')?.trim(),
  ) {
    if (restrictedKey) {
      const equals = restrictedKey.indexOf('=');
      if (equals <= 0 || equals === restrictedKey.length - 1)
        throw new ConfigError("INFERENCE_GPU_SERVER_KEY expects <key>=<value>, as the tail of the GPU server's --grpc-restricted-protocol, but got a value without both");
      this.metadata.set(`triton-grpc-protocol-${restrictedKey.slice(0, equals).toLowerCase()}`, restrictedKey.slice(equals + 1));
    }
    const Service = loadTritonProto().inference.GRPCInferenceService;
    this.client = new Service(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': 30_000,
      // After a connection fails, grpc-js waits before trying again, doubling up to 120 s by default: an
      // endpoint that restarted would stay out of the router that long. Its probes retry every few seconds anyway.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2_000,
    });
  }

  serverReady(): Promise<{ ready: boolean }> {
    return this.unary((m, o, cb) => this.client.ServerReady({}, m, o, cb));
  }

  repositoryIndex(): Promise<RepositoryIndexResponse__Output> {
    return this.unary((m, o, cb) => this.client.RepositoryIndex({ repository_name: '', ready: false }, m, o, cb));
  }

  modelConfig(name: string, version = ''): Promise<ModelConfigResponse__Output> {
    return this.unary((m, o, cb) => this.client.ModelConfig({ name, version }, m, o, cb));
  }

  modelReady(name: string, version = ''): Promise<{ ready: boolean }> {
    return this.unary((m, o, cb) => this.client.ModelReady({ name, version }, m, o, cb));
  }

  modelStatistics(name = '', version = ''): Promise<ModelStatisticsResponse__Output> {
    return this.unary((m, o, cb) => this.client.ModelStatistics({ name, version }, m, o, cb));
  }

  /** Model control (Triton's explicit mode): load or reload a model from the repository. */
  async repositoryModelLoad(name: string): Promise<void> {
    await this.unary((m, o, cb) => this.client.RepositoryModelLoad({ repository_name: '', model_name: name }, m, o, cb));
  }

  async repositoryModelUnload(name: string): Promise<void> {
    await this.unary((m, o, cb) => this.client.RepositoryModelUnload({ repository_name: '', model_name: name }, m, o, cb));
  }

  modelInfer(request: ModelInferRequest, deadlineMs = this.deadlineMs): Promise<ModelInferResponse__Output> {
    return this.unary((m, o, cb) => this.client.ModelInfer(request, m, o, cb), deadlineMs);
  }

  /**
   * Opens a ModelStreamInfer call. It has no deadline (it is meant to live
   * long and carry many requests); each request's own deadline is the
   * caller's to enforce.
   */
  modelStreamInfer(): InferStreamCall {
    return this.client.ModelStreamInfer(this.metadata.clone(), {});
  }

  /** The channel is connected (or idle and able to connect). */
  get connected(): boolean {
    return this.client.getChannel().getConnectivityState(false) === grpc.connectivityState.READY;
  }

  close(): void {
    this.client.close();
  }

  private unary<Res>(start: UnaryCall<Res>, deadlineMs = this.deadlineMs): Promise<Res> {
    return new Promise((resolve, reject) => start(this.metadata.clone(), { deadline: Date.now() + deadlineMs }, (error, response) => (error ? reject(error) : resolve(response!))));
  }
}

export function isGrpcError(error: unknown): error is grpc.ServiceError {
  return typeof error === 'object' && error !== null && 'code' in error && 'details' in error;
}

export { status as GrpcStatus } from '@grpc/grpc-js';

/** A failure of the endpoint or the network, as opposed to the server's answer. */
export function isTransportFailure(error: unknown): boolean {
  return isGrpcError(error) && (error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED || error.code === grpc.status.INTERNAL || error.code === grpc.status.UNKNOWN);
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

/**
 * The connection broke with the call on it, as when its server is killed:
 * whether the server began the call cannot be known. A unary call's answer
 * then reached no one, so it may run elsewhere (gpu-tier.ts's modelInfer);
 * a stream's tokens may have, so a stream never does.
 */
export function connectionDropped(error: unknown): boolean {
  return isGrpcError(error) && error.code === grpc.status.UNAVAILABLE && DROPPED.test(error.details ?? '');
}

/** grpc-js's words for a connection lost under a call: its own, or the socket's error when that arrives first. */
const DROPPED = /^(Connection dropped|read ECONNRESET)$/;

/** The server answered that the model (or the whole server) takes no requests now. */
export function refusedAsNotReady(error: unknown): boolean {
  return isGrpcError(error) && error.code === grpc.status.UNAVAILABLE && SERVER_REFUSED.test(error.details ?? '');
}

const SERVER_REFUSED = /accepts no inference requests|is not ready|not available/i;
const NEVER_STARTED = new RegExp(`No connection established|Stream refused by server|Channel closed before call started|${SERVER_REFUSED.source}`, 'i');
