/**
 * The GPU tier as the inference subgraph sees it: one or more gpu-server (or
 * Triton) endpoints serving the same model repository. Calls go round-robin
 * to endpoints that are ready and whose circuit is closed, so one endpoint
 * down is not an outage.
 *
 * Retries: a unary call is retried on the next endpoint, with backoff, only
 * when it provably never started — gRPC UNAVAILABLE with no response
 * metadata, i.e. the server never accepted the call. Nothing that may have
 * started generating is run twice.
 *
 * Readiness: each endpoint is probed with ServerReady every
 * `probeIntervalMs`; the subgraph's /ready reports the tier ready while at
 * least one endpoint is.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../lib/log';
import type { ModelInferRequest } from '../../gpu-server/protocol/messages';
import { CircuitBreaker } from './circuit-breaker';
import { SharedInferStream } from './shared-stream';
import { GrpcStatus, isGrpcError, TritonClient, type TritonApi } from './triton-client';

export interface GpuTierOptions {
  endpoints: string[];
  deadlineMs: number;
  log: Logger;
  /** @default 3 */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt. @default 50 ms */
  backoffMs?: number;
  /** @default 2000 ms */
  probeIntervalMs?: number;
  /** @default 5 */
  failureThreshold?: number;
  /** @default 5000 ms */
  cooldownMs?: number;
}

export class GpuEndpoint {
  ready = false;
  readonly stream: SharedInferStream;

  constructor(
    readonly client: TritonClient,
    readonly breaker: CircuitBreaker,
  ) {
    this.stream = new SharedInferStream(client, () => this.breaker.failed());
  }

  get address(): string {
    return this.client.address;
  }
}

export class NoEndpointError extends Error {
  override name = 'NoEndpointError';
}

export class GpuTier implements TritonApi {
  readonly endpoints: GpuEndpoint[];
  private next = 0;
  private readonly probe: NodeJS.Timeout;

  constructor(private readonly options: GpuTierOptions) {
    if (options.endpoints.length === 0) throw new TypeError('GpuTier expects at least one endpoint');
    this.endpoints = options.endpoints.map(
      (address) =>
        new GpuEndpoint(
          new TritonClient(address, options.deadlineMs),
          new CircuitBreaker({ failureThreshold: options.failureThreshold ?? 5, cooldownMs: options.cooldownMs ?? 5_000 }),
        ),
    );
    // Until the first probe answers, every endpoint is a candidate.
    for (const e of this.endpoints) e.ready = true;
    void this.probeAll();
    this.probe = setInterval(() => void this.probeAll(), options.probeIntervalMs ?? 2_000);
    this.probe.unref();
  }

  /** True while at least one endpoint is ready. */
  async isReady(): Promise<boolean> {
    await this.probeAll();
    return this.endpoints.some((e) => e.ready);
  }

  /** The next endpoint that is ready and whose circuit lets a call through. */
  pick(): GpuEndpoint {
    const n = this.endpoints.length;
    for (let i = 0; i < n; i++) {
      const endpoint = this.endpoints[(this.next + i) % n];
      if (endpoint.ready && endpoint.breaker.tryAcquire()) {
        this.next = (this.next + i + 1) % n;
        return endpoint;
      }
    }
    const states = this.endpoints.map((e) => `${e.address} ${e.ready ? `circuit ${e.breaker.state}` : 'not ready'}`).join('; ');
    throw new NoEndpointError(`no GPU endpoint can take the call (${states})`);
  }

  serverReady() {
    return this.unary((c) => c.serverReady());
  }
  repositoryIndex() {
    return this.unary((c) => c.repositoryIndex());
  }
  modelConfig(name: string, version = '') {
    return this.unary((c) => c.modelConfig(name, version));
  }
  modelStatistics(name = '', version = '') {
    return this.unary((c) => c.modelStatistics(name, version));
  }
  modelInfer(request: ModelInferRequest, deadlineMs?: number) {
    return this.unary((c) => c.modelInfer(request, deadlineMs));
  }

  close(): void {
    clearInterval(this.probe);
    for (const e of this.endpoints) {
      e.stream.close();
      e.client.close();
    }
  }

  private async unary<T>(call: (client: TritonClient) => Promise<T>): Promise<T> {
    const attempts = this.options.maxAttempts ?? 3;
    let delay = this.options.backoffMs ?? 50;
    for (let attempt = 1; ; attempt++) {
      const endpoint = this.pick();
      try {
        const result = await call(endpoint.client);
        endpoint.breaker.succeeded();
        return result;
      } catch (error) {
        if (!isTransportFailure(error)) {
          endpoint.breaker.succeeded();
          throw error;
        }
        endpoint.breaker.failed();
        if (!neverStarted(error) || attempt >= attempts) throw error;
        this.options.log.warn('GPU call did not start; retrying on the next endpoint', { endpoint: endpoint.address, attempt, error: (error as grpc.ServiceError).details });
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay *= 2;
      }
    }
  }

  private async probeAll(): Promise<void> {
    await Promise.all(
      this.endpoints.map(async (e) => {
        const was = e.ready;
        e.ready = await e.client.serverReady().then((r) => r.ready, () => false);
        if (was !== e.ready) this.options.log.info(`GPU endpoint ${e.ready ? 'ready' : 'not ready'}`, { endpoint: e.address });
      }),
    );
  }
}

/** A failure of the endpoint or the network, as opposed to the server's answer. */
export function isTransportFailure(error: unknown): boolean {
  return isGrpcError(error) && (error.code === GrpcStatus.UNAVAILABLE || error.code === GrpcStatus.DEADLINE_EXCEEDED || error.code === GrpcStatus.INTERNAL || error.code === GrpcStatus.UNKNOWN);
}

/** UNAVAILABLE before the server sent any metadata: the call never reached a handler. */
function neverStarted(error: unknown): boolean {
  return isGrpcError(error) && error.code === GrpcStatus.UNAVAILABLE && Object.keys(error.metadata?.getMap() ?? {}).length === 0;
}
