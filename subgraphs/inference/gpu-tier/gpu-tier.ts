/**
 * The GPU tier as the inference subgraph sees it: several gpu-server (or
 * Triton) endpoints, not all serving the same models, behind one router.
 *
 * Endpoints: the list given at start, or the file of endpoint-list.ts, which
 * can change it at run time; either may name DNS targets (dns-endpoints.ts),
 * whose addresses follow the name's records. An endpoint dropped from the
 * list (or from a name's answer) takes no new work (unless no listed
 * endpoint can take it yet: see `pick`) and is closed once its requests are
 * done — its started streams and calls finish there; one that comes back
 * before then is taken back as it is.
 *
 * Knowledge: every `probeIntervalMs` each endpoint is polled (gpu-endpoint.ts:
 * ServerReady, RepositoryIndex, ModelStatistics). `repositoryIndex()` polls
 * too and merges the answers, so the catalog sees one repository in which a
 * model is READY when it is ready on some endpoint that is up.
 *
 * Routing (router.ts): a call for a model goes to the least-loaded endpoint
 * on which that model is ready, that answers, and whose circuit lets it
 * through. A stream given an affinity key (a conversation's,
 * prefix-affinity.ts) goes back to the endpoint that last served that key,
 * where its earlier prompt is in the prefix cache, unless that endpoint is
 * busier than the least-loaded one by more than `affinityMargin`. A batch
 * (one ModelInfer) goes whole to one endpoint. Streams stay on the endpoint
 * that started them (its shared stream, `startStream`).
 *
 * Failover: a call is retried, on another endpoint, when it provably never
 * started (`neverStarted` in triton-client.ts); a ModelInfer also when its
 * connection dropped under it (`connectionDropped`: its server died): a
 * unary answer that never arrived was delivered to no one and billed to no
 * one, so running it again costs GPU time at worst (when the server lived
 * and finished it), never a doubled answer or charge. A stream never moves
 * once it may have started. An endpoint that could not be connected, or
 * whose connection dropped, is taken out until a poll reaches it again; one that says the model is not
 * ready loses that model until its next index; transport failures count on
 * its circuit breaker; a successful poll closes the breaker, so a restarted
 * endpoint rejoins by itself.
 */
import type * as grpc from '@grpc/grpc-js';
import { ErrorCode } from '../../../lib/errors';
import type { Logger } from '../../../lib/log';
import type { ModelIndex__Output as ModelIndex, ModelInferRequest, RepositoryIndexResponse__Output as RepositoryIndexResponse } from '../../../protocol/triton/messages';
import type { BreakerState } from '../../../lib/circuit-breaker';
import { DnsEndpoints, type DnsName } from './dns-endpoints';
import { EndpointFile } from './endpoint-list';
import { GpuEndpoint } from './gpu-endpoint';
import { AffinityTable } from './prefix-affinity';
import { NoEndpointError, withAffinity } from './router';
import { StreamError, type StreamRoute } from './shared-stream';
import { connectionDropped, isTransportFailure, neverStarted, refusedAsNotReady, type TritonApi, type TritonClient } from './triton-client';

export { GpuEndpoint } from './gpu-endpoint';
export { NoEndpointError } from './router';

export interface GpuTierOptions {
  /** host:port of each endpoint, or a DNS target `dns:///name:port` standing for the name's addresses (may be empty when `endpointsFile` lists them). */
  endpoints: string[];
  /** A file listing the endpoints, re-read when it changes (endpoint-list.ts); it wins over `endpoints` once readable. */
  endpointsFile?: string;
  /** How often the file's stat is checked. @default 2000 ms */
  endpointsFilePollMs?: number;
  /** How often the DNS targets of the list are resolved again (INFERENCE_GPU_DNS_REFRESH_MS). @default 5000 ms */
  dnsRefreshMs?: number;
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
  /**
   * How much busier (requests in flight plus queued) than the least-loaded
   * endpoint the endpoint that last served a conversation may be and still
   * get its next turn (INFERENCE_GPU_AFFINITY_MARGIN). @default 4
   */
  affinityMargin?: number;
  /** Conversations whose endpoint is remembered, the most recent kept. @default 100000 */
  affinityKeys?: number;
}

/** One endpoint's view of one model, for `Model.endpoints`. */
export interface ModelEndpoint {
  address: string;
  /** Routing may send this model's requests there now. */
  ready: boolean;
  /** The model's state there (Triton's READY, LOADING, UNAVAILABLE…); UNAVAILABLE while the endpoint does not answer. */
  state: string;
  /** Requests of ours on the endpoint now (all models). */
  inFlight: number;
  /** Mean requests for this model waiting in the endpoint's queue over the last poll interval. */
  queued: number;
  breaker: 'CLOSED' | 'OPEN' | 'HALF_OPEN';
}

/** A streamed request started by `startStream`. */
export interface StreamHandle {
  /** The endpoint the request is on (another one after a move). */
  readonly endpoint: GpuEndpoint;
  /** Cancels the request on its endpoint; a no-op once it has ended. */
  cancel(): void;
}

const BREAKER_NAMES: Record<BreakerState, ModelEndpoint['breaker']> = { closed: 'CLOSED', open: 'OPEN', 'half-open': 'HALF_OPEN' };

export class GpuTier implements TritonApi {
  private active: GpuEndpoint[] = [];
  private readonly retiring = new Set<GpuEndpoint>();
  private next = 0;
  private polling: Promise<void> | undefined;
  private readonly probe: NodeJS.Timeout;
  private readonly file: EndpointFile | undefined;
  private readonly dns: DnsEndpoints;
  private readonly affinity: AffinityTable;

  constructor(private readonly options: GpuTierOptions) {
    this.affinity = new AffinityTable(options.affinityKeys ?? 100_000);
    this.dns = new DnsEndpoints({ refreshMs: options.dnsRefreshMs ?? 5_000, log: options.log, onChange: (addresses) => this.applyAddresses(addresses) });
    this.setEndpoints(options.endpoints);
    if (options.endpointsFile) {
      this.file = new EndpointFile({
        file: options.endpointsFile,
        pollMs: options.endpointsFilePollMs ?? 2_000,
        log: options.log,
        onChange: (entries) => this.setEndpoints(entries),
      });
      this.file.reload();
    }
    // A DNS target counts though it has not answered yet: until it does, the tier is not ready (isReady), which is what a readiness probe is for.
    if (this.active.length === 0 && this.dns.names.length === 0) {
      this.close();
      throw new TypeError(`GpuTier expects at least one endpoint, but got none from the list${options.endpointsFile ? ` or from ${options.endpointsFile}` : ''}`);
    }
    void this.pollAll();
    this.probe = setInterval(() => void this.pollAll(), options.probeIntervalMs ?? 2_000);
    this.probe.unref();
  }

  get endpoints(): readonly GpuEndpoint[] {
    return this.active;
  }

  /** The DNS targets of the list and what each last resolved to (for /metrics). */
  get dnsNames(): readonly DnsName[] {
    return this.dns.names;
  }

  /** Makes `entries` (host:port addresses and DNS targets, as parseEndpointList returns them) the endpoint list. */
  setEndpoints(entries: readonly string[]): void {
    this.dns.setList(entries);
  }

  /**
   * Makes `addresses` the endpoints. Kept ones keep their state; new ones are
   * polled at once; dropped ones take no new work and close when idle; a
   * retiring one that is listed again is taken back (its work and breaker
   * carry on).
   */
  private applyAddresses(addresses: readonly string[]): void {
    const current = new Map(this.active.map((e) => [e.address, e]));
    const added: GpuEndpoint[] = [];
    this.active = addresses.map((address) => {
      const kept = current.get(address);
      if (kept) {
        current.delete(address);
        return kept;
      }
      const retired = [...this.retiring].find((e) => e.address === address);
      if (retired) {
        this.retiring.delete(retired);
        return retired;
      }
      const endpoint = new GpuEndpoint(address, {
        deadlineMs: this.options.deadlineMs,
        failureThreshold: this.options.failureThreshold ?? 5,
        cooldownMs: this.options.cooldownMs ?? 5_000,
      });
      added.push(endpoint);
      return endpoint;
    });
    for (const endpoint of current.values()) this.retiring.add(endpoint);
    this.closeIdleRetired();
    for (const endpoint of added) void endpoint.poll();
    if (added.length > 0 || current.size > 0) {
      this.options.log.info('GPU endpoints changed', { endpoints: addresses, added: added.map((e) => e.address), removed: [...current.keys()] });
    }
  }

  /** Re-reads the endpoint file and resolves the DNS targets now (the service calls it on SIGHUP). */
  reloadEndpoints(): void {
    this.file?.reload();
    void this.dns.refresh();
  }

  /** True while at least one endpoint answers. */
  async isReady(): Promise<boolean> {
    await this.pollAll();
    return this.active.some((e) => e.reachable);
  }

  /**
   * The endpoint for a call (or a stream) on `model`: ready there, answering,
   * circuit letting the call through; the least loaded of those, or the one
   * that last served `affinityKey` when it is within the affinity margin;
   * among the listed endpoints, else among those draining out of the list.
   * Throws NoEndpointError, whose code says whether the model is unknown, not
   * ready, or the tier unreachable.
   */
  pick(model: string, version = '', affinityKey?: string): GpuEndpoint {
    let candidates = this.active.filter((e) => e.usableFor(model, version));
    // An endpoint that left the list still serves while none listed can: when a DNS answer swaps one pod for another, the newcomer takes no work until its first poll answers, and the pod that left is draining, not gone.
    if (candidates.length === 0) candidates = [...this.retiring].filter((e) => e.usableFor(model, version));
    const start = this.next++;
    const last = affinityKey === undefined ? undefined : this.affinity.get(affinityKey);
    const margin = this.options.affinityMargin ?? 4;
    while (candidates.length > 0) {
      const preferred = candidates.find((e) => e.address === last);
      const index = withAffinity(candidates, (e) => e.load(model), start % candidates.length, preferred, margin);
      const endpoint = candidates[index];
      // A half-open circuit lets one trial call through at a time.
      if (endpoint.breaker.tryAcquire()) {
        if (affinityKey !== undefined) this.affinity.set(affinityKey, endpoint.address);
        return endpoint;
      }
      candidates.splice(index, 1);
    }
    throw this.unroutable(model, version);
  }

  /** Where `model` is listed, and how each of those endpoints stands. */
  endpointsOf(model: string): ModelEndpoint[] {
    return this.active
      .filter((e) => e.lists(model))
      .map((e) => ({
        address: e.address,
        ready: e.usableFor(model),
        state: e.reachable ? modelState(e, model) : 'UNAVAILABLE',
        inFlight: e.inFlight,
        queued: e.queued.get(model) ?? 0,
        breaker: BREAKER_NAMES[e.breaker.state],
      }));
  }

  /**
   * Starts a streamed request on the endpoint `pick` chooses for its model
   * (and its `affinityKey`, see prefix-affinity.ts), where it stays. If that endpoint's stream never reached the server
   * (StreamError.neverStarted: nothing of it began) the request starts again
   * on another endpoint, unseen by `route`; any other failure reaches `route`.
   * The handle's `endpoint` is where the request is now. Throws
   * NoEndpointError when no endpoint can take it at the start.
   */
  startStream(request: ModelInferRequest, route: StreamRoute, affinityKey?: string): StreamHandle {
    const attempts = this.options.maxAttempts ?? 3;
    let cancelled = false;
    const start = (attempt: number): { endpoint: GpuEndpoint; cancel: () => void } => {
      const endpoint = this.pick(request.model_name ?? '', request.model_version ?? '', affinityKey);
      // The stream's first answer and its last say the endpoint is healthy; the tokens between tell the breaker nothing more.
      let answered = false;
      const cancel = endpoint.stream.start(request, {
        response: (response, final) => {
          if (!answered || final) {
            answered = true;
            endpoint.breaker.observe(true);
          }
          route.response(response, final);
        },
        error: (error) => {
          // A per-request error is the server's answer: the endpoint is healthy. A broken call was counted by the
          // shared stream, and takes the endpoint out until a poll reaches it again, as a dropped unary call does:
          // a stream started again after losing its server (completions.ts) must not be sent back to it.
          if (!error.transport) endpoint.breaker.observe(true);
          else endpoint.reachable = false;
          if (!error.neverStarted || cancelled || attempt >= attempts) return route.error(error);
          this.options.log.warn('GPU stream did not start; moving the request to another endpoint', { endpoint: endpoint.address, model: request.model_name, attempt, error: error.message });
          try {
            current = start(attempt + 1);
          } catch (next) {
            route.error(new StreamError(`${error.message}; no other endpoint could take the request: ${(next as Error).message}`, true));
          }
        },
      });
      return { endpoint, cancel };
    };
    let current = start(1);
    return {
      get endpoint() {
        return current.endpoint;
      },
      cancel: () => {
        cancelled = true;
        current.cancel();
      },
    };
  }

  async serverReady(): Promise<{ ready: boolean }> {
    return { ready: await this.isReady() };
  }

  /**
   * Every endpoint's RepositoryIndex, merged: one entry per model version,
   * READY when it is ready on an endpoint that is up, else the states found
   * with the endpoint each was found on (in `reason`).
   */
  async repositoryIndex(): Promise<RepositoryIndexResponse> {
    await this.pollAll();
    const known = this.active.filter((e) => e.models);
    if (known.length === 0) {
      throw new NoEndpointError(`no GPU endpoint has answered RepositoryIndex (${this.active.map((e) => e.address).join(', ')})`, ErrorCode.GpuUnavailable);
    }
    const merged = new Map<string, ModelIndex>();
    for (const endpoint of known) {
      const down = !endpoint.reachable ? 'not answering' : endpoint.breaker.state === 'open' ? 'circuit open' : undefined;
      for (const [name, versions] of endpoint.models!) {
        for (const v of versions) {
          const key = `${name}@${v.version}`;
          const state = down ? 'UNAVAILABLE' : v.state;
          const reason = `${endpoint.address}: ${down ?? `${v.state}${v.reason ? ` (${v.reason})` : ''}`}`;
          const existing = merged.get(key);
          if (!existing || (existing.state !== 'READY' && state === 'READY')) merged.set(key, { name, version: v.version, state, reason: state === 'READY' ? '' : reason });
          else if (existing.state !== 'READY') existing.reason += `; ${reason}`;
        }
      }
    }
    return { models: [...merged.values()] };
  }

  modelConfig(name: string, version = '') {
    return this.call(name, version, 0, (c) => c.modelConfig(name, version));
  }

  /** Routed by the request's model: a batch goes whole to one endpoint. */
  modelInfer(request: ModelInferRequest, deadlineMs?: number) {
    // One deadline for the call, not one per attempt: a moved call ends when the first would have.
    const until = deadlineMs === undefined ? undefined : Date.now() + deadlineMs;
    const left = () => (until === undefined ? undefined : Math.max(1, until - Date.now()));
    return this.call(request.model_name ?? '', request.model_version ?? '', rows(request), (c) => c.modelInfer(request, left()), movable);
  }

  close(): void {
    clearInterval(this.probe);
    this.file?.close();
    this.dns.close();
    for (const e of [...this.active, ...this.retiring]) e.close();
    this.retiring.clear();
  }

  /** `mayMove`: whether a failed attempt may run on another endpoint (by default, only one that never started). */
  private async call<T>(model: string, version: string, weight: number, call: (client: TritonClient) => Promise<T>, mayMove: (error: unknown) => boolean = neverStarted): Promise<T> {
    const attempts = this.options.maxAttempts ?? 3;
    let delay = this.options.backoffMs ?? 50;
    for (let attempt = 1; ; attempt++) {
      const endpoint = this.pick(model, version);
      endpoint.begin(weight);
      try {
        const result = await call(endpoint.client);
        endpoint.end(weight, false);
        endpoint.breaker.observe(true);
        return result;
      } catch (error) {
        const refused = refusedAsNotReady(error);
        const transport = isTransportFailure(error) && !refused;
        endpoint.end(weight, transport);
        if (refused) {
          // A healthy server's answer: the endpoint is fine, the model is not (there).
          endpoint.breaker.observe(true);
          endpoint.markNotReady(model, (error as grpc.ServiceError).details);
        } else if (transport) {
          endpoint.breaker.observe(false);
          if (movable(error)) endpoint.reachable = false; // could not connect, or lost its connection: until a poll reaches it again
        } else {
          endpoint.breaker.observe(true);
          throw error;
        }
        if (!mayMove(error) || attempt >= attempts) throw error;
        this.options.log.warn(neverStarted(error) ? 'GPU call did not start; moving it to another endpoint' : 'GPU call lost with its connection, no answer delivered; moving it to another endpoint', {
          endpoint: endpoint.address,
          model,
          attempt,
          error: (error as grpc.ServiceError).details,
        });
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay *= 2;
      }
    }
  }

  private unroutable(model: string, version: string): NoEndpointError {
    const named = `model ${JSON.stringify(model)}${version ? ` version ${version}` : ''}`;
    if (this.active.length === 0) {
      const names = this.dns.names.map((n) => n.target.entry).join(', ');
      return new NoEndpointError(`${named} cannot be routed: there is no GPU endpoint yet, no address has come from ${names}`, ErrorCode.GpuUnavailable);
    }
    const listing = this.active.filter((e) => e.lists(model));
    if (listing.length === 0) {
      const silent = this.active.filter((e) => !e.models);
      if (silent.length > 0) {
        return new NoEndpointError(
          `${named} is listed by no GPU endpoint that has answered, and ${silent.map((e) => e.address).join(', ')} ${silent.length === 1 ? 'has' : 'have'} not answered yet`,
          ErrorCode.GpuUnavailable,
        );
      }
      return new NoEndpointError(`${named} is served by none of the GPU endpoints (${this.active.map((e) => e.address).join(', ')})`, ErrorCode.ModelNotFound);
    }
    const states = listing.map((e) => `${e.address} ${whyNot(e, model, version)}`).join('; ');
    const retryAfter = Math.max(1, Math.ceil((this.options.probeIntervalMs ?? 2_000) / 1_000));
    return new NoEndpointError(`${named} is ready on no GPU endpoint that can take the call (${states}); retry in ${retryAfter} s`, ErrorCode.ModelNotReady, retryAfter);
  }

  /** Polls every endpoint (concurrent callers share one round), then closes retired endpoints that went idle. */
  private pollAll(): Promise<void> {
    this.polling ??= Promise.all(
      this.active.map(async (e) => {
        if (await e.poll()) this.options.log.info(`GPU endpoint ${e.reachable ? 'answers again' : 'does not answer'}`, { endpoint: e.address });
      }),
    ).then(() => {
      this.polling = undefined;
      this.closeIdleRetired();
    });
    return this.polling;
  }

  private closeIdleRetired(): void {
    for (const e of this.retiring) {
      if (e.inFlight > 0) continue;
      e.close();
      this.retiring.delete(e);
    }
  }
}

/** What a ModelInfer may be moved for: it never started, or its connection dropped with no answer delivered (see the header). */
const movable = (error: unknown) => neverStarted(error) || connectionDropped(error);

/** Batch rows of a ModelInfer request (its first input's leading dimension when it has a batch dimension). */
function rows(request: ModelInferRequest): number {
  const shape = request.inputs?.[0]?.shape ?? [];
  return shape.length >= 2 ? Math.max(1, Number(shape[0])) : 1;
}

function modelState(endpoint: GpuEndpoint, model: string): string {
  const versions = endpoint.models?.get(model) ?? [];
  return versions.find((v) => v.state === 'READY')?.state ?? versions[0]?.state ?? 'UNAVAILABLE';
}

function whyNot(endpoint: GpuEndpoint, model: string, version: string): string {
  if (!endpoint.reachable) return 'does not answer';
  if (endpoint.breaker.state === 'open') return 'has its circuit open';
  if (endpoint.readyFor(model, version)) return 'has its one half-open trial call in flight';
  const versions = endpoint.models?.get(model) ?? [];
  return `has it ${versions.map((v) => `${v.version ? `v${v.version} ` : ''}${v.state}${v.reason ? ` (${v.reason})` : ''}`).join(', ')}`;
}
