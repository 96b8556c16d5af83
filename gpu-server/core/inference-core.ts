/**
 * The gpu-server's core: what a Triton server answers, with no transport in
 * sight. grpc/ and http/ adapt it; tests may call it directly.
 *
 * Phases: `starting` (repository loading) → `ready` → `draining` (no new
 * inference, in-flight requests finish) → `stopped`.
 */
import { MalformedBytesTensorError, decodeBytesTensor } from '../protocol/bytes-tensor';
import { ELEMENT_SIZE, isWireDatatype, wireDatatype, type WireDatatype } from '../protocol/datatypes';
import type { ModelConfig } from '../repository/model-config';
import type { ModelRepository, ModelVersion } from '../repository/repository';
import { InferenceError, InferenceErrorCode, invalidArgument, notFound, unavailable } from './errors';
import type { ModelVersionStatistics } from './statistics';
import { elementCount, type Tensor } from './tensor';

export type ServerPhase = 'starting' | 'ready' | 'draining' | 'stopped';

export const SERVER_NAME = 'sluice-gpu-server';
export const SERVER_VERSION = '0.1.0';
/** Protocol extensions implemented (names as Triton reports them). */
export const SERVER_EXTENSIONS = ['model_repository', 'statistics', 'binary_tensor_data'];

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

/** An input as received: datatype as sent (unchecked), data in the raw layout. */
export interface CoreInferInput {
  name: string;
  datatype: string;
  shape: number[];
  data: Buffer;
}

export interface CoreInferRequest {
  modelName: string;
  modelVersion?: string;
  id?: string;
  inputs: CoreInferInput[];
  /** Names of the outputs wanted; empty or absent: all. */
  outputs?: string[];
}

export interface CoreInferResponse {
  modelName: string;
  modelVersion: string;
  id: string;
  outputs: Tensor[];
}

export class InferenceCore {
  private currentPhase: ServerPhase = 'starting';
  private inFlight = 0;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly repository: ModelRepository) {}

  get phase(): ServerPhase {
    return this.currentPhase;
  }

  /** Called once the repository has loaded. */
  markReady(): void {
    if (this.currentPhase === 'starting') this.currentPhase = 'ready';
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

  /** Validates a request against the model's config, schedules it, and returns the requested outputs. */
  async infer(request: CoreInferRequest): Promise<CoreInferResponse> {
    if (this.currentPhase !== 'ready') throw unavailable(`the server is ${this.currentPhase} and accepts no inference requests`);
    const v = this.resolve(request.modelName, request.modelVersion ?? '', { requireReady: true });
    const { inputs, batchSize } = validateInputs(v.config, request);
    const wanted = validateOutputs(v.config, request.outputs ?? []);
    this.inFlight++;
    try {
      const outputs = await v.scheduler!.schedule({ inputs, batchSize });
      return {
        modelName: v.name,
        modelVersion: v.version,
        id: request.id ?? '',
        outputs: wanted.map((name) => {
          const t = outputs.get(name);
          if (!t) throw new InferenceError(InferenceErrorCode.Internal, `model '${v.name}' produced no output '${name}'`);
          return t;
        }),
      };
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  /** Refuses new inference, waits for in-flight requests (at most `timeoutMs`), then unloads every model. */
  async drainAndStop(timeoutMs = 10_000): Promise<void> {
    if (this.currentPhase === 'stopped') return;
    this.currentPhase = 'draining';
    if (this.inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref()),
      ]);
    }
    await this.repository.close();
    this.currentPhase = 'stopped';
  }

  // -------------------------------------------------------------- private

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
    const shapeOk =
      input.shape.length === expectedShape.length &&
      input.shape.every((d, i) => Number.isInteger(d) && d >= 0 && (expectedShape[i] === -1 || expectedShape[i] === d));
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
    if (!isWireDatatype(input.datatype)) throw invalidArgument(`unknown datatype '${input.datatype}' for input '${input.name}'`);
    const size = ELEMENT_SIZE[input.datatype];
    if (size !== undefined) {
      if (input.data.length !== count * size) {
        throw invalidArgument(`input '${input.name}' for model '${model}' expects ${count * size} byte(s) of ${input.datatype} data for shape [${input.shape.join(',')}], but got ${input.data.length}`);
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
  if (missing.length) throw invalidArgument(`expected ${config.input.length} input(s) but got ${request.inputs.length} for model '${model}': missing ${missing.map((m) => `'${m}'`).join(', ')}`);
  return { inputs, batchSize: batchSize ?? 1 };
}

function validateOutputs(config: ModelConfig, requested: string[]): string[] {
  if (requested.length === 0) return config.output.map((o) => o.name);
  const known = new Set(config.output.map((o) => o.name));
  for (const name of requested) {
    if (!known.has(name)) throw invalidArgument(`unexpected inference output '${name}' for model '${config.name}'; expected: ${[...known].join(', ')}`);
  }
  return requested;
}
