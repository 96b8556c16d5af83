/**
 * The gpu-server's core: what a Triton server answers, with no transport in
 * sight. grpc/ and http/ adapt it; tests may call it directly.
 *
 * Phases: `starting` (repository loading) → `ready` → `draining` (no new
 * inference, in-flight requests finish) → `stopped`.
 *
 * Two ways in: `infer` (one request, one response: Triton's ModelInfer) and
 * `inferStream` (ModelStreamInfer: any number of responses for a decoupled
 * model, exactly one for the others). Decoupled models are served by their
 * version's StreamDispatcher, the others by its Scheduler (dynamic batcher).
 */
import { setMaxListeners } from 'node:events';
import { MalformedBytesTensorError, decodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import { ELEMENT_SIZE, wireDatatype, type WireDatatype } from '../../protocol/triton/datatypes';
import type { ModelConfig } from '../../protocol/triton/model-config';
import type { ModelEntry, ModelRepository, ModelVersion } from '../repository/repository';
import { withParameterInputs } from './parameter-inputs';
import { InferenceError, InferenceErrorCode, invalidArgument, notFound, unavailable } from './errors';
import type { CoreInferInput, CoreInferRequest } from './infer-request';
import { reservedParameters, type CoreParameterValue } from './request-parameters';
import { responseParameters } from './response-parameters';
import type { ModelVersionStatistics } from './statistics';
import { elementCount, type Tensor } from './tensor';

export type { CoreInferInput, CoreInferRequest, CoreParameterValue };

export type ServerPhase = 'starting' | 'ready' | 'draining' | 'stopped';

export const SERVER_NAME = 'sluice-gpu-server';
export const SERVER_VERSION = '0.1.0';
/** Protocol extensions implemented (names as Triton reports them). */
export const SERVER_EXTENSIONS = ['model_repository', 'model_configuration', 'schedule_policy', 'statistics', 'binary_tensor_data', 'parameters'];

export interface CoreTensorMetadata {
  name: string;
  datatype: WireDatatype;
  /** -1 for a variable dimension, including the batch dimension. */
  shape: number[];
}

export interface CoreModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: CoreTensorMetadata[];
  outputs: CoreTensorMetadata[];
}

export interface CoreModelIndexEntry {
  name: string;
  version: string;
  state: string;
  reason: string;
}

export interface CoreInferResponse {
  modelName: string;
  modelVersion: string;
  id: string;
  outputs: Tensor[];
  /** Set by the model's runner (response-parameters.ts), e.g. `sluice_cached_prompt_tokens`. */
  parameters: Record<string, CoreParameterValue>;
}

/** One response of `inferStream`. */
export interface CoreStreamResponse extends CoreInferResponse {
  /** The last response of its request. */
  final: boolean;
  /** The runner's, and `triton_final_response: final`. */
  parameters: Record<string, CoreParameterValue>;
}

/** One model instance's counters (for statistics and metrics per instance and device). */
export interface CoreInstanceStatistics {
  name: string;
  version: string;
  /** Triton's instance name, e.g. `sluice-embed_0_0`. */
  instance: string;
  kind: 'KIND_CPU' | 'KIND_GPU';
  /** The GPU id for KIND_GPU, -1 for KIND_CPU. */
  device: number;
  /** Batches executed (decoupled models: requests served). */
  executions: number;
  /** Time spent executing (decoupled models: with at least one live sequence). */
  busyNs: number;
  /** Live sequences now (decoupled models; 0 otherwise). */
  activeSequences: number;
  /** The instance's prefix-cache counters, indexed by PrefixCacheCounter (all 0 without a prefix cache). */
  prefixCache: Float64Array;
}

export class InferenceCore {
  private currentPhase: ServerPhase = 'starting';
  /** Aborted when a stop's drain timeout has passed: cancels what is still queued or generating. */
  private readonly stopping = new AbortController();
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly phaseListeners = new Set<(phase: ServerPhase) => void>();

  constructor(private readonly repository: ModelRepository) {
    // Every queued request of an in-process caller without its own signal listens on this one, so
    // 64 concurrent callers are 64 listeners, not a leak: no limit, no MaxListenersExceededWarning.
    setMaxListeners(0, this.stopping.signal);
  }

  get phase(): ServerPhase {
    return this.currentPhase;
  }

  /** Calls `listener` on every phase change (e.g. grpc.health.v1 Watch); returns the unsubscribe function. */
  onPhaseChange(listener: (phase: ServerPhase) => void): () => void {
    this.phaseListeners.add(listener);
    return () => this.phaseListeners.delete(listener);
  }

  /** Called once the repository has loaded. */
  markReady(): void {
    if (this.currentPhase === 'starting') this.setPhase('ready');
  }

  /** Live from construction until stopped. */
  isLive(): boolean {
    return this.currentPhase !== 'stopped';
  }

  /**
   * Ready to take inference. Unlike Triton's strict readiness, one model that
   * failed to load does not make the server unready: it is UNAVAILABLE in the
   * index and the other models serve (see ModelReady per model).
   */
  isReady(): boolean {
    return this.currentPhase === 'ready';
  }

  serverMetadata() {
    return { name: SERVER_NAME, version: SERVER_VERSION, extensions: [...SERVER_EXTENSIONS] };
  }

  modelReady(name: string, version = ''): boolean {
    const entry = this.repository.get(name);
    if (!entry) throw notFound(`Request for unknown model: '${name}' is not found`);
    const v = version ? entry.versions.find((x) => x.version === version) : entry.versions.find((x) => x.state === 'READY');
    return v?.state === 'READY';
  }

  modelMetadata(name: string, version = ''): CoreModelMetadata {
    const v = this.resolve(name, version, { requireReady: false });
    const entry = this.repository.get(name)!;
    const batchDim = v.config.max_batch_size > 0 ? [-1] : [];
    const meta = (t: { name: string; data_type: string; dims: number[] }): CoreTensorMetadata => ({
      name: t.name,
      datatype: wireDatatype(t.data_type)!,
      shape: [...batchDim, ...t.dims],
    });
    return {
      name,
      versions: entry.versions.filter((x) => x.state === 'READY').map((x) => x.version),
      platform: v.config.platform || v.config.backend || '',
      inputs: v.config.input.map(meta),
      outputs: v.config.output.map(meta),
    };
  }

  modelConfig(name: string, version = ''): ModelConfig {
    const entry = this.repository.get(name);
    if (entry && !entry.versions.length && entry.config) return entry.config;
    return this.resolve(name, version, { requireReady: false }).config;
  }

  /** One row per model version (or per model, when it failed before having versions). */
  repositoryIndex(readyOnly = false): CoreModelIndexEntry[] {
    const rows: CoreModelIndexEntry[] = [];
    for (const entry of this.repository.entries()) {
      if (entry.versions.length === 0) {
        rows.push({ name: entry.name, version: '', state: 'UNAVAILABLE', reason: entry.error ?? 'no version loaded' });
        continue;
      }
      for (const v of entry.versions) rows.push({ name: v.name, version: v.version, state: v.state, reason: v.reason });
    }
    return readyOnly ? rows.filter((r) => r.state === 'READY') : rows;
  }

  /** Statistics of one model (all its versions, or one), or of every model when `name` is empty. */
  statistics(name = '', version = ''): ModelVersionStatistics[] {
    if (!name) return this.repository.entries().flatMap((e) => e.versions.filter((v) => v.state === 'READY').map((v) => v.stats.snapshot()));
    const entry = this.repository.get(name);
    if (!entry) throw notFound(`Request for unknown model: '${name}' is not found`);
    if (version) return [this.resolve(name, version, { requireReady: false }).stats.snapshot()];
    return entry.versions.filter((v) => v.state === 'READY').map((v) => v.stats.snapshot());
  }

  /** Whether the model (its given version, or its first ready one) is decoupled; throws NOT_FOUND/UNAVAILABLE like `infer`. */
  isDecoupled(name: string, version = ''): boolean {
    return this.resolve(name, version, { requireReady: false }).config.model_transaction_policy?.decoupled === true;
  }

  /**
   * Validates a request against the model's config, schedules it, and returns
   * the requested outputs. Decoupled models are refused as Triton refuses
   * them (UNIMPLEMENTED): their responses need `inferStream`. Aborting
   * `signal` (the client went away) drops the request if it still waits in
   * the queue; once executing, it completes.
   */
  async infer(given: CoreInferRequest, signal?: AbortSignal): Promise<CoreInferResponse> {
    const v = this.admit(given);
    const request = withParameterInputs(v.config, given);
    if (v.dispatcher)
      throw new InferenceError(
        InferenceErrorCode.Unimplemented,
        `ModelInfer RPC doesn't support models with decoupled transaction policy: model '${v.name}' is decoupled; expected ModelStreamInfer (or /generate_stream over HTTP)`,
      );
    const { inputs, batchSize } = validateInputs(v.config, request);
    const wanted = validateOutputs(v.config, request.outputs ?? []);
    const { priority, timeoutMicroseconds } = reservedParameters(v.name, request.parameters);
    return this.tracked(async () => {
      const outputs = await v.scheduler!.schedule({ inputs, batchSize, priority, timeoutMicroseconds, signal: this.untilStopped(signal) });
      return { modelName: v.name, modelVersion: v.version, id: request.id ?? '', outputs: pick(v.name, outputs, wanted), parameters: responseParameters(outputs) };
    });
  }

  /**
   * Streams a request's responses to `onResponse`. A decoupled model sends any
   * number, the last with final=true; a final response without outputs is
   * passed on only when the request sets `triton_enable_empty_final_response`,
   * or when it is the request's only response (so every request gets at least
   * one; otherwise, as in Triton, the client learned the data already). A
   * non-decoupled model sends exactly one, final. Resolves after the final
   * response; rejects with an InferenceError on failure. Aborting `signal`
   * cancels the request (a decoupled model stops within one decode step).
   */
  async inferStream(given: CoreInferRequest, onResponse: (response: CoreStreamResponse) => void, signal?: AbortSignal): Promise<void> {
    const v = this.admit(given);
    const request = withParameterInputs(v.config, given);
    const id = request.id ?? '';
    const respond = (outputs: Tensor[], final: boolean, parameters: Record<string, CoreParameterValue>) =>
      onResponse({ modelName: v.name, modelVersion: v.version, id, outputs, final, parameters: { ...parameters, triton_final_response: final } });
    if (!v.dispatcher) {
      const response = await this.infer(request, signal);
      respond(response.outputs, true, response.parameters);
      return;
    }
    const { inputs } = validateInputs(v.config, request);
    const wanted = validateOutputs(v.config, request.outputs ?? []);
    const { enableEmptyFinalResponse } = reservedParameters(v.name, request.parameters);
    let sent = 0;
    await this.tracked(() =>
      v.dispatcher!.stream(
        inputs,
        (outputs, final) => {
          if (outputs.size === 0) {
            if (final && (enableEmptyFinalResponse || sent === 0)) respond([], true, {});
            return;
          }
          sent++;
          // A streaming model may leave an output out of a response (e.g. a count only in the last one).
          respond(
            wanted.filter((name) => outputs.has(name)).map((name) => outputs.get(name)!),
            final,
            responseParameters(outputs),
          );
        },
        this.untilStopped(signal),
      ),
    );
  }

  /** Requests queued and not yet executing, per ready model version (nv_inference_pending_request_count). */
  pendingRequests(): Array<{ name: string; version: string; pending: number }> {
    return this.readyVersions().map((v) => ({ name: v.name, version: v.version, pending: v.scheduler?.pendingCount ?? 0 }));
  }

  /** Counters of every instance of every ready model version. */
  instanceStatistics(): CoreInstanceStatistics[] {
    return this.readyVersions().flatMap((v) => {
      const counters = (v.dispatcher ?? v.scheduler)!.instanceCounters();
      const active = v.dispatcher?.activeSequences();
      return v.instances.map((instance, i) => ({
        name: v.name,
        version: v.version,
        instance: instance.name,
        kind: instance.kind,
        device: instance.device,
        executions: counters[i].executions,
        busyNs: counters[i].busyNs,
        activeSequences: active?.[i] ?? 0,
        prefixCache: v.prefixCacheCounters[i],
      }));
    });
  }

  /**
   * RepositoryModelLoad: (re)loads model `name` from disk (see
   * repository.ts). Rejects with NOT_FOUND when the repository has no such
   * directory, INVALID_ARGUMENT for a bad name, and INTERNAL when the model
   * failed to load (it is then UNAVAILABLE with that reason).
   */
  async loadModel(name: string): Promise<void> {
    this.checkModelName(name);
    let entry: ModelEntry;
    try {
      entry = await this.repository.loadModel(name);
    } catch (error) {
      throw notFound(`failed to load '${name}': ${error instanceof Error ? error.message : String(error)}`);
    }
    const failed = entry.versions.filter((v) => v.state !== 'READY');
    if (entry.error || entry.versions.length === 0 || failed.length === entry.versions.length) {
      const reason = entry.error ?? failed.map((v) => v.reason).join('; ');
      throw new InferenceError(InferenceErrorCode.Internal, `failed to load '${name}': ${reason || 'no version loaded'}`);
    }
  }

  /**
   * RepositoryModelUnload: new requests are refused at once (UNAVAILABLE);
   * queued and executing ones finish; resolves when the instances are closed.
   */
  async unloadModel(name: string): Promise<void> {
    this.checkModelName(name);
    if (!this.repository.get(name)) throw notFound(`failed to unload '${name}': Request for unknown model: '${name}' is not found`);
    await this.repository.unloadModel(name);
  }

  /**
   * Refuses new inference, waits for in-flight requests (at most `timeoutMs`),
   * then cancels whatever is still queued or generating — so a long stream or
   * a stuck client cannot hold the server past the timeout — and unloads
   * every model.
   */
  async drainAndStop(timeoutMs = 10_000): Promise<void> {
    if (this.currentPhase === 'stopped') return;
    this.setPhase('draining');
    if (this.inFlight > 0) {
      await Promise.race([new Promise<void>((resolve) => this.idleWaiters.push(resolve)), new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    }
    this.stopping.abort(unavailable('the server is stopping: the request was cancelled after the drain timeout'));
    await this.repository.close();
    this.setPhase('stopped');
  }

  // -------------------------------------------------------------- private

  /** The caller's signal, also aborted when the server stops after its drain timeout. */
  private untilStopped(signal?: AbortSignal): AbortSignal {
    return signal ? AbortSignal.any([signal, this.stopping.signal]) : this.stopping.signal;
  }

  private setPhase(phase: ServerPhase): void {
    this.currentPhase = phase;
    for (const listener of this.phaseListeners) listener(phase);
  }

  /** The ready version a request is for, once the server takes inference. */
  private admit(request: CoreInferRequest): ModelVersion {
    if (this.currentPhase !== 'ready') throw unavailable(`the server is ${this.currentPhase} and accepts no inference requests`);
    return this.resolve(request.modelName, request.modelVersion ?? '', { requireReady: true });
  }

  /** Runs `work` counted as in flight, so drainAndStop waits for it. */
  private async tracked<T>(work: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await work();
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  private readyVersions(): ModelVersion[] {
    return this.repository.entries().flatMap((e) => e.versions.filter((v) => v.state === 'READY'));
  }

  private checkModelName(name: string): void {
    if (!name || name.startsWith('.') || /[/\\]/.test(name)) {
      throw invalidArgument(`model name expects a directory name of the model repository (no '/', '\\' or leading '.'), but got '${name}'`);
    }
  }

  private resolve(name: string, version: string, { requireReady }: { requireReady: boolean }): ModelVersion {
    const entry = this.repository.get(name);
    if (!entry) throw notFound(`Request for unknown model: '${name}' is not found`);
    if (version && !/^\d+$/.test(version)) throw invalidArgument(`model version expects a positive integer, but got '${version}'`);
    const candidates = version ? entry.versions.filter((v) => v.version === version) : entry.versions;
    if (version && candidates.length === 0) {
      throw notFound(`Request for unknown model: '${name}' version ${version} is not found (served: ${entry.versions.map((v) => v.version).join(', ') || 'none'})`);
    }
    const ready = candidates.find((v) => v.state === 'READY');
    if (ready) return ready;
    if (!requireReady && candidates[0]) return candidates[0];
    const reason = candidates[0]?.reason || entry.error || 'not loaded';
    if (!requireReady && entry.versions.length === 0) throw unavailable(`model '${name}' is not available: ${reason}`);
    throw unavailable(`Request for unknown model: '${name}'${version ? ` version ${version}` : ''} is not ready: ${reason}`);
  }
}

// ------------------------------------------------------------------ validation

function validateInputs(config: ModelConfig, request: CoreInferRequest): { inputs: Map<string, Tensor>; batchSize: number } {
  const model = config.name;
  const batching = config.max_batch_size > 0;
  const byName = new Map(config.input.map((i) => [i.name, i]));
  const inputs = new Map<string, Tensor>();
  let batchSize: number | undefined;
  for (const input of request.inputs) {
    const spec = byName.get(input.name);
    if (!spec) throw invalidArgument(`unexpected inference input '${input.name}' for model '${model}'; expected: ${config.input.map((i) => i.name).join(', ')}`);
    if (inputs.has(input.name)) throw invalidArgument(`input '${input.name}' for model '${model}' is given twice`);
    const expectedType = wireDatatype(spec.data_type)!;
    if (input.datatype !== expectedType) {
      throw invalidArgument(`unexpected datatype ${input.datatype || '(empty)'} for inference input '${input.name}' of model '${model}': expected ${expectedType}, got ${input.datatype || '(empty)'}`);
    }
    const expectedShape = batching ? [-1, ...spec.dims] : spec.dims;
    const shapeOk = input.shape.length === expectedShape.length && input.shape.every((d, i) => Number.isInteger(d) && d >= 0 && (expectedShape[i] === -1 || expectedShape[i] === d));
    if (!shapeOk) {
      throw invalidArgument(`unexpected shape for input '${input.name}' for model '${model}': expected [${expectedShape.join(',')}], got [${input.shape.join(',')}]`);
    }
    if (batching) {
      const n = input.shape[0];
      if (n < 1 || n > config.max_batch_size) {
        throw invalidArgument(`inference request batch-size must be between 1 and ${config.max_batch_size} for model '${model}', but input '${input.name}' has batch size ${n}`);
      }
      if (batchSize !== undefined && n !== batchSize) {
        throw invalidArgument(`inputs of one request must share the batch size for model '${model}': expected ${batchSize}, got ${n} for input '${input.name}'`);
      }
      batchSize = n;
    }
    const count = elementCount(input.shape);
    const size = ELEMENT_SIZE[expectedType];
    if (size !== undefined) {
      if (input.data.length !== count * size) {
        throw invalidArgument(
          `input '${input.name}' for model '${model}' expects ${count * size} byte(s) of ${input.datatype} data for shape [${input.shape.join(',')}], but got ${input.data.length}`,
        );
      }
    } else {
      try {
        decodeBytesTensor(input.data, count);
      } catch (error) {
        if (error instanceof MalformedBytesTensorError) throw invalidArgument(`malformed BYTES data for input '${input.name}' of model '${model}': ${error.message}`);
        throw error;
      }
    }
    inputs.set(input.name, { name: input.name, datatype: input.datatype, shape: input.shape, data: input.data });
  }
  const missing = config.input.filter((i) => !i.optional && !inputs.has(i.name)).map((i) => i.name);
  if (missing.length) {
    const required = config.input.filter((i) => !i.optional).map((i) => `'${i.name}'`);
    throw invalidArgument(`model '${model}' requires input(s) ${required.join(', ')}, but the request is missing ${missing.map((m) => `'${m}'`).join(', ')}`);
  }
  return { inputs, batchSize: batchSize ?? 1 };
}

function pick(model: string, outputs: Map<string, Tensor>, wanted: string[]): Tensor[] {
  return wanted.map((name) => {
    const t = outputs.get(name);
    if (!t) throw new InferenceError(InferenceErrorCode.Internal, `model '${model}' produced no output '${name}'`);
    return t;
  });
}

function validateOutputs(config: ModelConfig, requested: string[]): string[] {
  if (requested.length === 0) return config.output.map((o) => o.name);
  const known = new Set(config.output.map((o) => o.name));
  for (const name of requested) {
    if (!known.has(name)) throw invalidArgument(`unexpected inference output '${name}' for model '${config.name}'; expected: ${[...known].join(', ')}`);
  }
  return requested;
}
