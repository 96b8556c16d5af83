/**
 * The contract between the scheduler and a model backend. A runner executes
 * one already-formed batch; it does not queue, batch or validate requests
 * (the core did that against the model's config before calling it).
 */
import type { ModelConfig } from '../../protocol/triton/model-config';
import type { Tensor } from './tensor';

/**
 * Thrown by `ModelRunner.execute` when some rows of a batch failed and the
 * others did not: `outputs` holds every row (failed ones with placeholder
 * values), `failures` the error of each failed row by its index in the
 * batch. The scheduler fails only the requests those rows belong to, so one
 * caller's bad input never fails the callers it was batched with.
 */
export class RowFailures extends Error {
  override readonly name = 'RowFailures';
  constructor(
    readonly outputs: Map<string, Tensor>,
    readonly failures: ReadonlyMap<number, Error>,
  ) {
    super(`${failures.size} row(s) of the batch failed: ${[...failures.values()][0]?.message ?? ''}`);
  }
}

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
  /** The model instance this runner is, and the device it is bound to. */
  instance: InstanceBinding;
  /** Where a backend with a prefix cache counts its hits, misses, evictions and bytes (prefix-cache-counters.ts); absent in tests that need no metrics. */
  prefixCacheCounters?: Float64Array;
}

/**
 * One model instance's place (Triton's instance_group): `KIND_GPU` instances
 * run with the CUDA execution provider when ONNX Runtime has it; on a machine
 * without one each listed GPU becomes a CPU execution slot (said once at
 * start-up), so the instance count and its parallelism stay the same.
 */
export interface InstanceBinding {
  /** Triton's instance name, e.g. `sluice-embed_0`. */
  name: string;
  index: number;
  kind: 'KIND_CPU' | 'KIND_GPU';
  /** The GPU id for KIND_GPU, -1 for KIND_CPU. */
  device: number;
  executionProvider: 'cpu' | 'cuda';
}

/**
 * Creates a runner for one model version, or throws an Error whose message
 * says why the model cannot be served (it becomes the UNAVAILABLE reason).
 */
export type RunnerFactory = (context: RunnerContext) => Promise<ModelRunner>;

/**
 * Where a streaming runner delivers the responses of one request. `final`
 * marks the last response; the runner calls `response` with final=true exactly
 * once unless the request fails (then the returned promise rejects instead).
 * A final response may carry no outputs (Triton's empty final response).
 */
export interface ResponseSink {
  response(outputs: Map<string, Tensor>, final: boolean): void;
}

/**
 * A runner for decoupled models (`model_transaction_policy { decoupled: true }`):
 * each request yields any number of responses. The runner schedules its own
 * requests (continuous batching: every decode step is one batched forward pass
 * over all live sequences of this instance; a new request joins at the next
 * step). `inputs` are one request's, without a batch dimension when the model
 * does not batch.
 */
export interface StreamingRunner extends ModelRunner {
  /**
   * Starts one request; resolves after its final response, rejects when it
   * fails. Aborting `signal` stops the sequence within one decode step; the
   * promise then resolves after a final response with whatever was produced
   * (finish reason "cancelled") or rejects with an AbortError-named Error.
   */
  stream(inputs: ReadonlyMap<string, Tensor>, sink: ResponseSink, signal: AbortSignal): Promise<void>;
  /** Live sequences on this instance right now (for choosing an instance). */
  readonly activeSequences: number;
}

export function isStreamingRunner(runner: ModelRunner): runner is StreamingRunner {
  return typeof (runner as Partial<StreamingRunner>).stream === 'function';
}
