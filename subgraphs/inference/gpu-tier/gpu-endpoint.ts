/**
 * One GPU endpoint (a gpu-server or Triton) as the router sees it: its
 * client, circuit breaker and shared stream, and what a poll last learned —
 * whether it answers ServerReady, which models (and versions) it serves in
 * which state (RepositoryIndex), and how long its queues are (ModelStatistics).
 *
 * Load is what routing compares: our own requests on it right now (exact,
 * counted here and on the shared stream) plus, per model, the mean number of
 * requests that waited in the server's queue over the last poll interval.
 * That mean comes from gRPC statistics alone, by Little's law: the growth of
 * `inference_stats.queue.ns` (total time requests spent queued) divided by the
 * interval's length. It sees traffic from other clients too (another gateway
 * replica) and needs no metrics port, which a Triton address does not tell us.
 */
import type { ModelIndex__Output as ModelIndex, ModelStatistics__Output } from '../../../protocol/triton/messages';
import { CircuitBreaker } from '../../../lib/circuit-breaker';
import { SharedInferStream } from './shared-stream';
import { TritonClient } from './triton-client';

export interface GpuEndpointOptions {
  deadlineMs: number;
  failureThreshold: number;
  cooldownMs: number;
}

export type EndpointModel = Pick<ModelIndex, 'version' | 'state' | 'reason'>;

export class GpuEndpoint {
  readonly client: TritonClient;
  readonly breaker: CircuitBreaker;
  readonly stream: SharedInferStream;
  /** Answers ServerReady. Until the first poll answers, an endpoint is assumed up. */
  reachable = true;
  /** Versions of each model, as the last RepositoryIndex listed them; undefined until one answered. */
  models: Map<string, EndpointModel[]> | undefined;
  /** Per model: mean requests queued on the server over the last poll interval. */
  readonly queued = new Map<string, number>();
  /** Inference calls routed here (a batch counts once; control calls such as ModelConfig do not) and how many failed in transport. */
  unaryRequests = 0;
  unaryFailures = 0;
  private unaryInFlight = 0;
  private lastQueue = new Map<string, { ns: number; at: bigint }>();

  constructor(
    readonly address: string,
    options: GpuEndpointOptions,
  ) {
    this.client = new TritonClient(address, options.deadlineMs);
    this.breaker = new CircuitBreaker({ failureThreshold: options.failureThreshold, openMs: options.cooldownMs });
    this.stream = new SharedInferStream(this.client, () => this.breaker.observe(false));
  }

  /** Requests of ours on this endpoint now: unary calls weighted by their batch rows, plus live streamed requests. */
  get inFlight(): number {
    return this.unaryInFlight + this.stream.active;
  }

  get requests(): number {
    return this.unaryRequests + this.stream.started;
  }

  get failures(): number {
    return this.unaryFailures + this.stream.failed;
  }

  /**
   * What routing compares for `model`: lower is less loaded. The queue is
   * counted in whole requests: a mean below half a request is noise (our own
   * requests passing through), and would otherwise break the ties that make
   * an idle tier round-robin.
   */
  load(model: string): number {
    return this.inFlight + Math.round(this.queued.get(model) ?? 0);
  }

  /** Whether the last index lists `model` (in any state). */
  lists(model: string): boolean {
    return this.models?.has(model) ?? false;
  }

  /** Whether the last index has `model` READY (at `version` when one is given). */
  readyFor(model: string, version = ''): boolean {
    return (this.models?.get(model) ?? []).some((m) => m.state === 'READY' && (!version || m.version === version));
  }

  /** Routing may send work here: it answers, its circuit is not open, and the model is ready on it. */
  usableFor(model: string, version = ''): boolean {
    return this.reachable && this.breaker.state !== 'open' && this.readyFor(model, version);
  }

  /** The server refused work for `model` as not ready: stop routing it here until the next index says otherwise. */
  markNotReady(model: string, reason: string): void {
    const versions = this.models?.get(model);
    if (versions)
      this.models!.set(
        model,
        versions.map((m) => ({ ...m, state: 'UNAVAILABLE', reason })),
      );
  }

  /** A unary call starts here: `weight` batch rows of inference, or 0 for a control call (not counted as a request). */
  begin(weight: number): void {
    if (weight > 0) this.unaryRequests++;
    this.unaryInFlight += weight;
  }

  end(weight: number, transportFailure: boolean): void {
    this.unaryInFlight -= weight;
    if (transportFailure) this.unaryFailures++;
  }

  /**
   * ServerReady, then RepositoryIndex and ModelStatistics. A successful poll
   * closes an open circuit: the endpoint answers again, so it rejoins without
   * waiting for a trial call. Returns whether `reachable` changed.
   */
  async poll(): Promise<boolean> {
    const was = this.reachable;
    try {
      const { ready } = await this.client.serverReady();
      if (ready) {
        const [index, statistics] = await Promise.all([this.client.repositoryIndex(), this.client.modelStatistics()]);
        this.models = groupVersions(index.models);
        this.updateQueues(statistics.model_stats);
        this.breaker.observe(true);
      }
      this.reachable = ready;
    } catch {
      this.reachable = false;
    }
    return was !== this.reachable;
  }

  close(): void {
    // Before its streams fail: nothing, not a stream started again after losing this one, is routed here now.
    this.reachable = false;
    this.stream.close();
    this.client.close();
  }

  private updateQueues(stats: readonly ModelStatistics__Output[]): void {
    const now = process.hrtime.bigint();
    const totals = new Map<string, number>();
    // Statistics come per version; the queue a model's requests meet is all of its versions'.
    for (const s of stats) totals.set(s.name, (totals.get(s.name) ?? 0) + (s.inference_stats?.queue?.ns ?? 0));
    const next = new Map<string, { ns: number; at: bigint }>();
    for (const [model, ns] of totals) {
      const last = this.lastQueue.get(model);
      const elapsed = last ? Number(now - last.at) : 0;
      this.queued.set(model, last && elapsed > 0 ? Math.max(0, ns - last.ns) / elapsed : 0);
      next.set(model, { ns, at: now });
    }
    for (const model of this.queued.keys()) if (!totals.has(model)) this.queued.delete(model);
    this.lastQueue = next;
  }
}

function groupVersions(index: readonly ModelIndex[]): Map<string, EndpointModel[]> {
  const models = new Map<string, EndpointModel[]>();
  for (const m of index) {
    const versions = models.get(m.name) ?? [];
    versions.push({ version: m.version, state: m.state, reason: m.reason });
    models.set(m.name, versions);
  }
  return models;
}
