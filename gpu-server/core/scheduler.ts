/**
 * The scheduler of one model version: it queues validated requests and hands
 * batches to the model's runner.
 *
 * Contract: `schedule(request)` resolves with exactly the request's slice of
 * the outputs, or rejects; every queued request is settled on every path —
 * runner failure, a thrown split, or `close()` — so no caller hangs.
 *
 * Batching (when the config has `dynamic_batching`): a batch is formed when an
 * instance is free and the queue is not empty. It takes requests in arrival
 * order while their total batch size stays within `max_batch_size` and their
 * non-batch shapes equal the first request's (a request that does not fit
 * waits for the next batch, keeping its place). Formation is deferred by
 * `max_queue_delay_microseconds`, or by one turn of the event loop
 * (setImmediate) when that is 0: requests that arrive together — the 32
 * concurrent calls of one GraphQL query, say — land in one execution, yet a
 * lone request is not held back measurably. When the pending samples already
 * fill `max_batch_size` the batch is formed without waiting.
 * Without `dynamic_batching` every request is its own execution, as in Triton.
 *
 * Instances: one runner per model instance (each its own worker thread and
 * ONNX Runtime session, see backends/worker-host.ts); a batch goes to an idle
 * runner, so as many batches run at once as the model has instances.
 */
import { InferenceError, InferenceErrorCode, unavailable } from './errors';
import type { ModelRunner } from './runner';
import type { StatisticsRecorder } from './statistics';
import { concatBatch, splitBatch, type Tensor } from './tensor';

export interface ScheduledRequest {
  /** Inputs by name; batched along dim 0 when the model batches. */
  inputs: Map<string, Tensor>;
  /** Samples in this request (its dim 0), 1 for a non-batching model. */
  batchSize: number;
}

export interface SchedulerOptions {
  /** One runner per instance; each runs one batch at a time. */
  runners: ModelRunner[];
  stats: StatisticsRecorder;
  /** 0: the model does not batch; each request runs alone. */
  maxBatchSize: number;
  /** Whether requests may be combined (config has `dynamic_batching`). */
  dynamicBatching: boolean;
  /** How long to wait for more requests before forming a batch. @default 0 µs */
  maxQueueDelayMicroseconds?: number;
}

interface Pending extends ScheduledRequest {
  signature: string;
  arrivedAt: bigint;
  resolve(outputs: Map<string, Tensor>): void;
  reject(error: Error): void;
}

export class Scheduler {
  private readonly queue: Pending[] = [];
  /** Runners not executing a batch right now. */
  private readonly idle: ModelRunner[];
  private timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly options: SchedulerOptions) {
    if (options.runners.length === 0) throw new TypeError('Scheduler expects at least one runner');
    this.idle = [...options.runners];
  }

  schedule(request: ScheduledRequest): Promise<Map<string, Tensor>> {
    if (this.closed) return Promise.reject(unavailable('the model is being unloaded and accepts no new requests'));
    return new Promise((resolve, reject) => {
      this.queue.push({ ...request, signature: signatureOf(request.inputs), arrivedAt: process.hrtime.bigint(), resolve, reject });
      this.pump();
    });
  }

  /** Requests waiting for a batch (not yet executing). */
  get pendingCount(): number {
    return this.queue.length;
  }

  /**
   * Stops accepting requests, lets queued and running ones finish, then
   * resolves. The runner itself is closed by the caller.
   */
  async drain(): Promise<void> {
    this.closed = true;
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  // -------------------------------------------------------------- private

  private pump(): void {
    const { dynamicBatching, maxBatchSize } = this.options;
    if (this.idle.length === 0 || this.queue.length === 0) return;
    const pendingSamples = this.queue.reduce((n, p) => n + p.batchSize, 0);
    if (!dynamicBatching || (maxBatchSize > 0 && pendingSamples >= maxBatchSize)) {
      this.cancelTimer();
      this.dispatch();
      return;
    }
    if (this.timer) return;
    const delayUs = this.options.maxQueueDelayMicroseconds ?? 0;
    const fire = () => {
      this.timer = undefined;
      this.dispatch();
    };
    this.timer = delayUs > 0 ? setTimeout(fire, delayUs / 1000) : setImmediate(fire);
  }

  private cancelTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer as NodeJS.Timeout);
    clearImmediate(this.timer as NodeJS.Immediate);
    this.timer = undefined;
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const runner = this.idle.shift()!;
      void this.execute(runner, this.takeBatch()).finally(() => {
        this.idle.push(runner);
        this.pump();
        if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
      });
    }
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.idle.length === this.options.runners.length;
  }

  private takeBatch(): Pending[] {
    const { dynamicBatching, maxBatchSize } = this.options;
    const first = this.queue.shift()!;
    if (!dynamicBatching || maxBatchSize === 0) return [first];
    const batch = [first];
    let size = first.batchSize;
    for (let i = 0; i < this.queue.length && size < maxBatchSize; ) {
      const candidate = this.queue[i];
      if (candidate.signature === first.signature && size + candidate.batchSize <= maxBatchSize) {
        batch.push(candidate);
        size += candidate.batchSize;
        this.queue.splice(i, 1);
      } else {
        i++;
      }
    }
    return batch;
  }

  private async execute(runner: ModelRunner, batch: Pending[]): Promise<void> {
    const { stats, maxBatchSize } = this.options;
    const started = process.hrtime.bigint();
    const sizes = batch.map((p) => p.batchSize);
    const total = sizes.reduce((a, b) => a + b, 0);
    let pieces: Array<Map<string, Tensor>>;
    let computeNs: number;
    try {
      const inputs = new Map<string, Tensor>();
      for (const name of batch[0].inputs.keys()) inputs.set(name, concatBatch(batch.map((p) => p.inputs.get(name)!)));
      const outputs = await runner.execute(inputs);
      computeNs = Number(process.hrtime.bigint() - started);
      stats.executed(total, computeNs);
      pieces = batch.map(() => new Map());
      for (const [name, tensor] of outputs) {
        const split = maxBatchSize > 0 ? splitBatch(tensor, sizes) : [tensor];
        split.forEach((t, i) => pieces[i].set(name, t));
      }
    } catch (error) {
      const failure =
        error instanceof InferenceError ? error : new InferenceError(InferenceErrorCode.Internal, `model execution failed: ${error instanceof Error ? error.message : String(error)}`);
      const now = process.hrtime.bigint();
      for (const p of batch) {
        stats.requestFailed(Number(now - p.arrivedAt));
        p.reject(failure);
      }
      return;
    }
    const now = process.hrtime.bigint();
    batch.forEach((p, i) => {
      stats.requestSucceeded(p.batchSize, Number(now - p.arrivedAt), Number(started - p.arrivedAt), computeNs);
      p.resolve(pieces[i]);
    });
  }
}

/** Requests may share a batch only when their non-batch shapes and datatypes agree. */
function signatureOf(inputs: Map<string, Tensor>): string {
  return [...inputs.values()]
    .map((t) => `${t.name}:${t.datatype}:${t.shape.slice(1).join('x')}`)
    .sort()
    .join('|');
}
