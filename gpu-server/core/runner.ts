/**
 * The contract between the scheduler and a model backend. A runner executes
 * one already-formed batch; it does not queue, batch or validate requests
 * (the core did that against the model's config before calling it).
 */
import type { ModelConfig } from '../repository/model-config';
import type { Tensor } from './tensor';

export interface ModelRunner {
  /**
   * Runs one batch. `inputs` holds every config input, batched along the
   * first dimension when the model batches (max_batch_size > 0). Resolves with
   * every config output, batched the same way. A rejection fails every
   * request of the batch.
   */
  execute(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>>;
  /** Releases the runner's resources; called once, after the last execute settled. */
  close(): Promise<void>;
}

export interface RunnerContext {
  config: ModelConfig;
  /** `<repository>/<model>` */
  modelDir: string;
  /** `<repository>/<model>/<version>` */
  versionDir: string;
  version: string;
}

/**
 * Creates a runner for one model version, or throws an Error whose message
 * says why the model cannot be served (it becomes the UNAVAILABLE reason).
 */
export type RunnerFactory = (context: RunnerContext) => Promise<ModelRunner>;
