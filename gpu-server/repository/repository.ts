/**
 * The model repository: `<root>/<model>/config.pbtxt` plus numbered version
 * directories, loaded the way Triton does at start-up. A model that cannot be
 * loaded — unreadable or invalid config, no version directory, a backend that
 * fails — is kept as UNAVAILABLE with the reason (file and line for config
 * errors), and every other model keeps serving.
 *
 * Model control (RepositoryModelLoad/Unload) works per model:
 * - `loadModel(name)` reads the model from disk again and loads it beside the
 *   serving one; new requests go to the new one as soon as it is ready, then
 *   the old versions unload as below. When the new one fails, the model is
 *   UNAVAILABLE with the reason (the old versions still unload: the load asked
 *   for what is on disk now).
 * - `unloadModel(name)`: its versions turn UNLOADING, so new requests are
 *   refused with UNAVAILABLE at once; requests already queued or executing
 *   finish normally (Triton too lets in-flight requests of an unloaded model
 *   complete); then the instances close and the versions are UNAVAILABLE,
 *   reason "unloaded", still listed in RepositoryIndex.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../lib/log';
import type { Clock } from '../core/clock';
import { newPrefixCacheCounters } from '../core/prefix-cache-counters';
import { isStreamingRunner, type InstanceBinding, type ModelRunner, type RunnerFactory } from '../core/runner';
import { DEFAULT_QUEUE_POLICY, Scheduler, type QueuePolicy, type SchedulerOptions } from '../core/scheduler';
import { StatisticsRecorder } from '../core/statistics';
import { StreamDispatcher } from '../core/stream-dispatcher';
import { wireDatatype } from '../../protocol/triton/datatypes';
import { cudaAvailable, instanceBindings } from './devices';
import type { ModelConfig, ModelQueuePolicy } from '../../protocol/triton/model-config';
import { parseModelConfig } from './model-config';

export type ModelState = 'READY' | 'UNAVAILABLE' | 'LOADING' | 'UNLOADING';

/** One loaded (or failed) model version. */
export interface ModelVersion {
  name: string;
  version: string;
  state: ModelState;
  reason: string;
  config: ModelConfig;
  /** One per instance, in the order of `instances`. */
  runners: ModelRunner[];
  instances: InstanceBinding[];
  /** One per instance, in the order of `instances`: its prefix cache's counters (zero for backends without one). */
  prefixCacheCounters: Float64Array[];
  /** Set for a READY model that is not decoupled. */
  scheduler?: Scheduler;
  /** Set for a READY decoupled model (its runners all stream). */
  dispatcher?: StreamDispatcher;
  stats: StatisticsRecorder;
}

/** A model directory: its config (if it parsed) and its served versions. */
export interface ModelEntry {
  name: string;
  /** Set when the whole model failed before any version could load. */
  error?: string;
  config?: ModelConfig;
  /** Served versions, highest first. */
  versions: ModelVersion[];
}

export interface RepositoryOptions {
  root: string;
  /** Picks the backend for a model; throws when it has none. */
  selectBackend(config: ModelConfig): RunnerFactory;
  logger: Logger;
  /** Whether KIND_GPU instances get the CUDA execution provider. @default cudaAvailable() */
  cuda?: boolean;
  /** Time for the schedulers. @default the real clock */
  clock?: Clock;
}

export class ModelRepository {
  private readonly models = new Map<string, ModelEntry>();
  /** Per model, the end of its last load or unload: model control runs one at a time per model. */
  private readonly control = new Map<string, Promise<unknown>>();
  private readonly cuda: boolean;

  private constructor(private readonly options: RepositoryOptions) {
    this.cuda = options.cuda ?? cudaAvailable();
  }

  /** Scans `root` and loads every model in it. Never rejects because of one model. */
  static async load(options: RepositoryOptions): Promise<ModelRepository> {
    const repository = new ModelRepository(options);
    if (!fs.existsSync(options.root)) throw new Error(`model repository ${options.root} does not exist`);
    const names = fs
      .readdirSync(options.root, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort();
    for (const name of names) {
      const entry = await repository.loadEntry(name);
      repository.models.set(name, entry);
    }
    repository.reportCpuSlots(repository.entries());
    return repository;
  }

  /**
   * (Re)loads model `name` from disk (see the file comment). Resolves with the
   * new entry, READY or not; rejects only when `<root>/<name>` is no model directory.
   */
  loadModel(name: string): Promise<ModelEntry> {
    return this.serialized(name, async () => {
      const dir = path.join(this.options.root, name);
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
        throw new Error(`the model repository ${this.options.root} has no model directory '${name}'`);
      }
      const previous = this.models.get(name);
      const entry = await this.loadEntry(name);
      this.models.set(name, entry);
      this.reportCpuSlots([entry]);
      if (previous) await unloadVersions(previous.versions);
      return entry;
    });
  }

  /** Unloads model `name` (see the file comment); resolves once its requests have finished and its instances closed. */
  unloadModel(name: string): Promise<void> {
    const entry = this.models.get(name);
    if (!entry) return Promise.reject(new Error(`unknown model '${name}'`));
    const serving = stopServing(entry.versions); // at once: requests arriving from now on are refused
    return this.serialized(name, async () => {
      // A load queued before this unload may have installed a newer copy meanwhile: unload that one too.
      const current = this.models.get(name);
      const installed = current && current !== entry ? stopServing(current.versions) : [];
      await unloadVersions([...serving, ...installed]);
      this.options.logger.info('model unloaded', { model: name });
    });
  }

  /** Every model entry, by name order. */
  entries(): ModelEntry[] {
    return [...this.models.values()];
  }

  get(name: string): ModelEntry | undefined {
    return this.models.get(name);
  }

  /** Drains every scheduler, then closes every runner. */
  async close(): Promise<void> {
    await Promise.all([...this.control.values()].map((p) => p.catch(() => undefined)));
    await unloadVersions(this.entries().flatMap((e) => e.versions));
  }

  // -------------------------------------------------------------- private

  private serialized<T>(name: string, task: () => Promise<T>): Promise<T> {
    const run = (this.control.get(name) ?? Promise.resolve()).catch(() => undefined).then(task);
    this.control.set(name, run);
    return run;
  }

  /** Says once per load which KIND_GPU instances run on CPU execution slots, because ONNX Runtime has no CUDA here. */
  private reportCpuSlots(entries: ModelEntry[]): void {
    const slots = entries.flatMap((e) => (e.versions[0]?.instances ?? []).filter((i) => i.kind === 'KIND_GPU' && i.executionProvider === 'cpu').map((i) => `${e.name}:${i.name}→GPU ${i.device}`));
    if (slots.length === 0) return;
    this.options.logger.warn('ONNX Runtime has no CUDA execution provider on this machine: each listed GPU is a CPU execution slot (own worker thread and session)', {
      instances: slots.join(', '),
    });
  }

  private async loadEntry(name: string): Promise<ModelEntry> {
    const { logger } = this.options;
    const dir = path.join(this.options.root, name);
    const configFile = path.join(dir, 'config.pbtxt');
    const failed = (error: string): ModelEntry => {
      logger.warn('model unavailable', { model: name, reason: error });
      return { name, error, versions: [] };
    };
    let config: ModelConfig;
    try {
      if (!fs.existsSync(configFile)) return failed(`${configFile} not found (the Sluice gpu-server needs an explicit config.pbtxt)`);
      config = parseModelConfig(fs.readFileSync(configFile, 'utf8'), configFile);
      if (config.name === '') config.name = name;
      validateModelConfig(config, name, configFile);
    } catch (error) {
      return failed(error instanceof Error ? error.message : String(error));
    }
    const versions = selectVersions(dir, config);
    if (typeof versions === 'string') return { ...failed(versions), config };

    let factory: RunnerFactory;
    try {
      factory = this.options.selectBackend(config);
    } catch (error) {
      return { ...failed(`${configFile}: ${error instanceof Error ? error.message : String(error)}`), config };
    }
    const loaded: ModelVersion[] = [];
    for (const version of versions) {
      const stats = new StatisticsRecorder(name, version);
      const instances = instanceBindings(config, this.cuda);
      const prefixCacheCounters = instances.map(() => newPrefixCacheCounters());
      const modelVersion: ModelVersion = { name, version, state: 'LOADING', reason: '', config, stats, runners: [], instances, prefixCacheCounters };
      try {
        const base = { config, modelDir: dir, versionDir: path.join(dir, version), version };
        // Started one after another and kept as they come, so a failure part-way still closes those already started.
        for (const [i, instance] of instances.entries()) modelVersion.runners.push(await factory({ ...base, instance, prefixCacheCounters: prefixCacheCounters[i] }));
        if (config.model_transaction_policy?.decoupled) {
          const streaming = modelVersion.runners.filter(isStreamingRunner);
          if (streaming.length !== modelVersion.runners.length) {
            throw new Error(
              `model '${name}' is decoupled (model_transaction_policy { decoupled: true }), but its backend does not stream responses; expected a backend with StreamingRunner instances`,
            );
          }
          modelVersion.dispatcher = new StreamDispatcher({ model: name, runners: streaming, stats, clock: this.options.clock });
        } else {
          modelVersion.scheduler = new Scheduler({ ...schedulerOptions(config), runners: modelVersion.runners, stats, clock: this.options.clock });
        }
        modelVersion.state = 'READY';
        logger.info('model ready', { model: name, version, instances: instances.map((i) => `${i.name}(${i.kind}${i.device >= 0 ? ` ${i.device}` : ''}, ${i.executionProvider})`).join(' ') });
      } catch (error) {
        await Promise.all(modelVersion.runners.splice(0).map((runner) => runner.close().catch(() => undefined)));
        modelVersion.state = 'UNAVAILABLE';
        modelVersion.reason = `version ${version}: ${error instanceof Error ? error.message : String(error)}`;
        logger.warn('model version unavailable', { model: name, version, reason: modelVersion.reason });
      }
      loaded.push(modelVersion);
    }
    return { name, config, versions: loaded };
  }
}

/**
 * Checks what the parser cannot: names, datatypes and dims make sense.
 * @throws Error naming the file and what is wrong.
 */
export function validateModelConfig(config: ModelConfig, dirName: string, file: string): void {
  const fail = (what: string): never => {
    throw new Error(`${file}: ${what}`);
  };
  if (config.name !== dirName) fail(`name '${config.name}' must match the model directory '${dirName}'`);
  if (config.max_batch_size < 0) fail(`max_batch_size must be >= 0, but got ${config.max_batch_size}`);
  if (config.input.length === 0) fail('at least one input is required');
  if (config.output.length === 0) fail('at least one output is required');
  if (config.dynamic_batching && config.max_batch_size === 0) fail('dynamic_batching requires max_batch_size > 0');
  if (config.sequence_batching) fail('sequence_batching is not supported by the Sluice gpu-server (no sequence batcher); expected dynamic_batching or none');
  if (config.ensemble_scheduling) fail('ensemble_scheduling is not supported by the Sluice gpu-server; expected dynamic_batching or none');
  const batching = config.dynamic_batching;
  if (batching) {
    const preferred = batching.preferred_batch_size ?? [];
    const bad = preferred.find((n) => n < 1 || n > config.max_batch_size);
    if (bad !== undefined) fail(`dynamic_batching.preferred_batch_size must be within 1..max_batch_size (${config.max_batch_size}), but got ${bad}`);
    const levels = batching.priority_levels ?? 0;
    const def = batching.default_priority_level ?? 0;
    if (levels > 0 && (def < 1 || def > levels)) fail(`dynamic_batching.default_priority_level must be within 1..priority_levels (${levels}), but got ${def}`);
    if (levels === 0 && def !== 0) fail(`dynamic_batching.default_priority_level is ${def}, but priority_levels is not set; expected priority_levels >= ${def}`);
    for (const key of Object.keys(batching.priority_queue_policy ?? {})) {
      if (!(Number(key) >= 1 && Number(key) <= levels)) fail(`dynamic_batching.priority_queue_policy has level ${key}, but priority levels are 1..${levels}`);
    }
  }
  config.instance_group.forEach((group, i) => {
    if (group.count !== undefined && group.count < 1) fail(`instance_group ${i} has count ${group.count}; expected at least 1`);
    if ((group.kind === 'KIND_CPU' || group.kind === 'KIND_MODEL') && group.gpus?.length) fail(`instance_group ${i} is ${group.kind} but lists gpus [${group.gpus.join(', ')}]; gpus are for KIND_GPU`);
    if (group.gpus?.some((g) => !Number.isInteger(g) || g < 0)) fail(`instance_group ${i} lists gpus [${group.gpus?.join(', ')}]; expected non-negative device ids`);
  });
  const seen = new Set<string>();
  for (const [kind, tensors] of [
    ['input', config.input],
    ['output', config.output],
  ] as const) {
    for (const t of tensors) {
      if (!t.name) fail(`every ${kind} needs a name`);
      if (seen.has(`${kind}:${t.name}`)) fail(`${kind} '${t.name}' is declared twice`);
      seen.add(`${kind}:${t.name}`);
      if (!wireDatatype(t.data_type)) fail(`${kind} '${t.name}' has data_type ${t.data_type}, which is not a tensor type`);
      if (t.dims.length === 0) fail(`${kind} '${t.name}' needs dims`);
      if (t.dims.some((d) => d === 0 || d < -1)) fail(`${kind} '${t.name}' has dims [${t.dims.join(', ')}]; each must be positive or -1`);
    }
  }
}

/**
 * The version directories to serve under the config's version policy, highest
 * first, or a string saying why there are none.
 */
function selectVersions(dir: string, config: ModelConfig): string[] | string {
  const available = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && /^[1-9]\d*$/.test(d.name))
    .map((d) => Number(d.name))
    .sort((a, b) => b - a);
  if (available.length === 0) return `${dir} has no numbered version directory (e.g. ${dir}/1)`;
  const policy = config.version_policy;
  let chosen: number[];
  if (policy?.all) chosen = available;
  else if (policy?.specific) {
    const wanted = policy.specific.versions ?? [];
    const missing = wanted.filter((v) => !available.includes(v));
    if (missing.length) return `version_policy.specific lists version(s) ${missing.join(', ')}, but ${dir} has only ${available.join(', ')}`;
    chosen = available.filter((v) => wanted.includes(v));
  } else chosen = available.slice(0, Math.max(1, policy?.latest?.num_versions ?? 1));
  return chosen.map(String);
}

/** The scheduler settings a config asks for (Triton's dynamic_batching, with its defaults). */
export function schedulerOptions(config: ModelConfig): Omit<SchedulerOptions, 'runners' | 'stats' | 'clock'> {
  const batching = config.dynamic_batching;
  const levels = batching?.priority_levels ?? 0;
  return {
    model: config.name,
    maxBatchSize: config.max_batch_size,
    dynamicBatching: batching !== undefined,
    maxQueueDelayMicroseconds: batching?.max_queue_delay_microseconds ?? 0,
    preferredBatchSizes: batching?.preferred_batch_size ?? [],
    priorityLevels: levels,
    defaultPriorityLevel: levels > 0 ? batching?.default_priority_level : undefined,
    defaultQueuePolicy: queuePolicy(batching?.default_queue_policy),
    priorityQueuePolicy: new Map(Object.entries(batching?.priority_queue_policy ?? {}).map(([level, policy]) => [Number(level), queuePolicy(policy)])),
  };
}

function queuePolicy(policy: ModelQueuePolicy | undefined): QueuePolicy {
  return {
    maxQueueSize: policy?.max_queue_size ?? DEFAULT_QUEUE_POLICY.maxQueueSize,
    defaultTimeoutMicroseconds: policy?.default_timeout_microseconds ?? DEFAULT_QUEUE_POLICY.defaultTimeoutMicroseconds,
    allowTimeoutOverride: policy?.allow_timeout_override ?? DEFAULT_QUEUE_POLICY.allowTimeoutOverride,
    timeoutAction: policy?.timeout_action ?? DEFAULT_QUEUE_POLICY.timeoutAction,
  };
}

/** Marks the READY ones of `versions` UNLOADING (new requests are refused) and returns them. */
function stopServing(versions: ModelVersion[]): ModelVersion[] {
  const serving = versions.filter((v) => v.state === 'READY');
  for (const v of serving) {
    v.state = 'UNLOADING';
    v.reason = 'unloading';
  }
  return serving;
}

/** Refuses new requests to `versions`, lets theirs finish, closes their instances. */
async function unloadVersions(versions: ModelVersion[]): Promise<void> {
  stopServing(versions);
  const serving = versions.filter((v) => v.state === 'UNLOADING');
  await Promise.all(serving.map((v) => (v.dispatcher ?? v.scheduler)?.drain()));
  await Promise.all(
    serving.map(async (v) => {
      await Promise.all(v.runners.map((runner) => runner.close().catch(() => undefined)));
      v.state = 'UNAVAILABLE';
      v.reason = 'unloaded';
    }),
  );
}
