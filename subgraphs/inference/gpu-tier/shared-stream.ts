/**
 * One long-lived ModelStreamInfer call per GPU endpoint, shared by every
 * streamed request of this process: requests are written onto it with a
 * unique `id`, and responses are routed back by that id (Triton echoes it in
 * every response, including error responses). Opening a stream per request
 * would cost an HTTP/2 stream setup each and defeat the server's view of one
 * client.
 *
 * When the call fails or ends (the gpu-server restarted, the network broke)
 * every request still on it fails at once with the reason — never a hang —
 * and the next request opens a new call: the stream reconnects by itself.
 *
 * Cancelling one request: a cancelled request stops being routed at once and
 * a Sluice cancel message is written on the call (protocol/triton/cancel.ts):
 * our gpu-server stops that sequence within one decode step; against NVIDIA's
 * Triton the generation runs to its own end.
 */
import type * as grpc from '@grpc/grpc-js';
import type { ModelInferRequest, ModelInferResponse__Output, ModelStreamInferResponse__Output } from '../../../protocol/triton/messages';
import { CANCEL_REQUEST_PARAMETER } from '../../../protocol/triton/cancel';
import { streamedErrorStatus } from '../../../protocol/triton/error-code';
import { neverStarted, type InferStreamCall, type TritonClient } from './triton-client';

export { CANCEL_REQUEST_PARAMETER as CANCEL_PARAMETER } from '../../../protocol/triton/cancel';

export interface StreamRoute {
  /** A response for the request; `final` when it is the last. */
  response(response: ModelInferResponse__Output, final: boolean): void;
  /** The request failed: a server error message, or the call broke. */
  error(error: StreamError): void;
}

export class StreamError extends Error {
  override name = 'StreamError';
  constructor(
    message: string,
    /** True when the call itself broke (the endpoint is unhealthy), false for a per-request error from the server. */
    readonly transport: boolean,
    /** True when the call never reached the server (see neverStarted): no request on it began, so each may run elsewhere. */
    readonly neverStarted = false,
    /**
     * The gRPC status of the failure, when known: for a server error, the one
     * its `sluice_error_code` parameter names (absent from NVIDIA's Triton);
     * for a broken call, the call's status.
     */
    readonly status?: grpc.status,
  ) {
    super(message);
  }
}

export class SharedInferStream {
  private call: InferStreamCall | undefined;
  private readonly routes = new Map<string, StreamRoute>();
  /** Requests written, and requests failed because the call broke: for the endpoint's metrics. */
  started = 0;
  failed = 0;

  constructor(
    private readonly client: TritonClient,
    private readonly onTransportError: (error: StreamError) => void = () => undefined,
  ) {}

  /** Requests currently routed on this stream. */
  get active(): number {
    return this.routes.size;
  }

  /**
   * Writes `request` (its `id` must be unique among live requests) and routes
   * its responses to `route` until a final response or an error. Returns a
   * function that cancels the request.
   */
  start(request: ModelInferRequest, route: StreamRoute): () => void {
    const id = request.id;
    if (!id) throw new TypeError('a streamed request needs an id to route its responses');
    if (this.routes.has(id)) throw new TypeError(`request id ${id} is already live on this stream`);
    const call = this.open();
    this.routes.set(id, route);
    this.started++;
    call.write(request);
    return () => {
      if (!this.routes.delete(id) || this.call !== call) return;
      call.write({ model_name: request.model_name, model_version: request.model_version, id, inputs: [], parameters: { [CANCEL_REQUEST_PARAMETER]: { bool_param: true } } });
    };
  }

  /** Ends the call; live requests fail. */
  close(): void {
    this.fail(this.call, new StreamError('the inference service is shutting down', true));
  }

  private open(): InferStreamCall {
    if (this.call) return this.call;
    const call = this.client.modelStreamInfer();
    this.call = call;
    call.on('data', (message: ModelStreamInferResponse__Output) => this.dispatch(message));
    call.on('error', (error: grpc.ServiceError) =>
      this.fail(call, new StreamError(`the GPU stream to ${this.client.address} failed: ${error.details || error.message}`, true, neverStarted(error), error.code)),
    );
    call.on('end', () => this.fail(call, new StreamError(`the GPU server at ${this.client.address} closed the stream`, true)));
    return call;
  }

  private dispatch(message: ModelStreamInferResponse__Output): void {
    const response = message.infer_response;
    const id = response?.id ?? '';
    const route = this.routes.get(id);
    if (!route) return; // cancelled, or an answer to a cancel message
    if (message.error_message) {
      this.routes.delete(id);
      route.error(new StreamError(message.error_message, false, false, streamedErrorStatus(response?.parameters)));
      return;
    }
    // Responses of a non-decoupled model carry no flag: each is the only, final one.
    const final = response!.parameters.triton_final_response?.bool_param ?? true;
    if (final) this.routes.delete(id);
    route.response(response!, final);
  }

  private fail(call: SharedInferStream['call'], error: StreamError): void {
    if (!call || call !== this.call) return;
    this.call = undefined;
    call.removeAllListeners('data');
    call.on('error', () => undefined); // cancel() below emits one more
    call.cancel();
    const routes = [...this.routes.values()];
    this.routes.clear();
    this.failed += routes.length;
    if (routes.length > 0 || error.transport) this.onTransportError(error);
    for (const route of routes) route.error(error);
  }
}
