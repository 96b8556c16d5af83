/**
 * The model repository: `<root>/<model>/config.pbtxt` plus numbered version
 * directories, loaded the way Triton does at start-up. A model that cannot be
 * loaded — unreadable or invalid config, no version directory, a backend that
 * fails — is kept as UNAVAILABLE with the reason (file and line for config
 * errors), and every other model keeps serving.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from '../../lib/log';
import type { ModelRunner, RunnerFactory } from '../core/runner';
import { Scheduler } from '../core/scheduler';
import { StatisticsRecorder } from '../core/statistics';
import { wireDatatype } from '../protocol/datatypes';
import { instanceCount, parseModelConfig, type ModelConfig } from './model-config';

export type ModelState = 'READY' | 'UNAVAILABLE' | 'LOADING' | 'UNLOADING';

/** One loaded (or failed) model version. */
export interface ModelVersion {
  name: string;
  version: string;
  state: ModelState;
  reason: string;
  config: ModelConfig;
  /** One per instance (see `instanceCount`). */
  runners: ModelRunner[];
  scheduler?: Scheduler;
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
}

export class ModelRepository {
  private readonly models = new Map<string, ModelEntry>();

  private constructor(private readonly options: RepositoryOptions) {}

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
      const entry = await repository.loadModel(name);
      repository.models.set(name, entry);
    }
    return repository;
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
    const versions = this.entries().flatMap((e) => e.versions);
    await Promise.all(versions.map((v) => v.scheduler?.drain()));
    await Promise.all(
      versions.map(async (v) => {
        v.state = 'UNAVAILABLE';
        v.reason = 'unloaded';
        await Promise.all(v.runners.map((runner) => runner.close().catch(() => undefined)));
      }),
    );
  }

  // -------------------------------------------------------------- private

  private async loadModel(name: string): Promise<ModelEntry> {
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
      const modelVersion: ModelVersion = { name, version, state: 'LOADING', reason: '', config, stats, runners: [] };
      try {
        const base = { config, modelDir: dir, versionDir: path.join(dir, version), version };
        // Started one after another and kept as they come, so a failure part-way still closes those already started.
        for (let i = 0; i < instanceCount(config); i++) {
          const instance = { name: `${config.name}_${i}`, index: i, kind: 'KIND_CPU' as const, device: -1, executionProvider: 'cpu' as const };
          modelVersion.runners.push(await factory({ ...base, instance }));
        }
        modelVersion.scheduler = new Scheduler({
          runners: modelVersion.runners,
          stats,
          maxBatchSize: config.max_batch_size,
          dynamicBatching: config.dynamic_batching !== undefined,
          maxQueueDelayMicroseconds: config.dynamic_batching?.max_queue_delay_microseconds ?? 0,
        });
        modelVersion.state = 'READY';
        logger.info('model ready', { model: name, version });
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
  const seen = new Set<string>();
  for (const [kind, tensors] of [['input', config.input], ['output', config.output]] as const) {
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
