/**
 * The dynamic batcher of one model version (Triton's `dynamic_batching`): it
 * queues validated requests and hands batches to the model's instances.
 *
 * Contract: `schedule(request)` resolves with exactly the request's slice of
 * the outputs, or rejects; every queued request is settled on every path —
 * runner failure, a thrown split, a queue timeout, cancellation while queued,
 * or `drain()` — so no caller hangs.
 *
 * Queues: one per priority level (`priority_levels`, 1 is the highest; a
 * request's `priority` 0 means `default_priority_level`), each with its queue
 * policy: `max_queue_size` (a full queue refuses with RESOURCE_EXHAUSTED),
 * `default_timeout_microseconds` (a request's `timeout` may shorten it when
 * `allow_timeout_override`), and `timeout_action`: REJECT settles a request
 * whose timeout expires in the queue with UNAVAILABLE; DELAY moves it behind
 * every request of its level that has not timed out (so levels with higher
 * priority still come first, as in Triton). Batches take requests in that
 * order: level 1's queue, level 1's delayed ones, level 2's queue, …
 *
 * Forming a batch (when an instance is idle): walking that order, take every
 * request whose non-batch shapes equal the first one's while the total stays
 * within `max_batch_size` (a request that does not fit keeps its place). Then,
 * as Triton's batcher decides:
 * - if some prefix of it has a `preferred_batch_size`, the largest such prefix
 *   goes now, unless the queue delay has passed (then everything goes);
 * - if it reaches the largest preferred size (or `max_batch_size` when none is
 *   given) it goes now;
 * - otherwise it waits until the first request has waited
 *   `max_queue_delay_microseconds`. A delay of 0 still waits one turn of the
 *   event loop (setImmediate): requests that arrive together — the 32
 *   concurrent calls of one GraphQL query, say — land in one execution, yet a
 *   lone request is not held back measurably.
 * Without `dynamic_batching` every request is its own execution, in arrival
 * order, as in Triton.
 *
 * Instances: one runner per model instance (each its own worker thread and
 * ONNX Runtime session, see backends/worker-host.ts); a batch goes to an idle
 * runner, so as many batches run at once as the model has instances.
 */
import { realClock, type Clock } from './clock';
import { InferenceError, InferenceErrorCode, invalidArgument, unavailable } from './errors';
import { RowFailures, type ModelRunner } from './runner';
import type { StatisticsRecorder } from './statistics';
import { concatBatch, splitBatch, type Tensor } from './tensor';

export interface ScheduledRequest {
  /** Inputs by name; batched along dim 0 when the model batches. */
  inputs: Map<string, Tensor>;
  /** Samples in this request (its dim 0), 1 for a non-batching model. */
  batchSize: number;
  /** Triton's request priority: 0 is the model's default level, 1 the highest. @default 0 */
  priority?: number;
  /** The request's own queue timeout in µs (honoured when the policy allows overrides); 0: none. @default 0 */
  timeoutMicroseconds?: number;
  /** Aborting it while the request still waits in the queue removes it (rejected, counted as failed); once executing, it completes. */
  signal?: AbortSignal;
}

/** Triton's ModelQueuePolicy, with its defaults filled in. */
export interface QueuePolicy {
  /** 0: unbounded. */
  maxQueueSize: number;
  /** 0: requests wait as long as it takes. */
  defaultTimeoutMicroseconds: number;
  allowTimeoutOverride: boolean;
  timeoutAction: 'REJECT' | 'DELAY';
}

export const DEFAULT_QUEUE_POLICY: QueuePolicy = { maxQueueSize: 0, defaultTimeoutMicroseconds: 0, allowTimeoutOverride: false, timeoutAction: 'REJECT' };

export interface SchedulerOptions {
  /** Names the model in error messages. */
  model: string;
  /** One runner per instance; each runs one batch at a time. */
  runners: ModelRunner[];
  stats: StatisticsRecorder;
  /** 0: the model does not batch; each request runs alone. */
  maxBatchSize: number;
  /** Whether requests may be combined (config has `dynamic_batching`). */
  dynamicBatching: boolean;
  /** How long the first queued request may wait for more. @default 0 µs (one event-loop turn) */
  maxQueueDelayMicroseconds?: number;
  /** Batch sizes to prefer. @default [] */
  preferredBatchSizes?: number[];
  /** 0: one queue, no priorities. @default 0 */
  priorityLevels?: number;
  /** The level of a request with priority 0. @default 1 (when there are levels) */
  defaultPriorityLevel?: number;
  /** @default DEFAULT_QUEUE_POLICY */
  defaultQueuePolicy?: QueuePolicy;
  /** Per-level policies replacing the default one. */
  priorityQueuePolicy?: ReadonlyMap<number, QueuePolicy>;
  /** @default realClock */
  clock?: Clock;
}

/** Per-instance counters, in runner order. */
export interface InstanceCounters {
  executions: number;
  busyNs: number;
}

interface Pending extends ScheduledRequest {
  signature: string;
  arrivedAt: bigint;
  /** When its queue timeout expires; undefined: never. */
  deadline?: bigint;
  resolve(outputs: Map<string, Tensor>): void;
  reject(error: Error): void;
}

interface Level {
  policy: QueuePolicy;
  queue: Pending[];
  /** Timed out with timeout_action DELAY: served after the level's queue. */
  delayed: Pending[];
}

const NS_PER_US = 1000n;

export class Scheduler {
  private readonly levels: Level[];
  private readonly defaultLevel: number;
  /** Indices of runners not executing a batch right now. */
  private readonly idle: number[];
  private readonly counters: InstanceCounters[];
  private readonly clock: Clock;
  private readonly preferred: number[];
  /** Whether any level's policy can give a request a timeout (else expiry checks are skipped). */
  private readonly timeouts: boolean;
  private cancelDelayTimer: (() => void) | undefined;
  private cancelDeadlineTimer: (() => void) | undefined;
  private deadlineTimerAt: bigint | undefined;
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly options: SchedulerOptions) {
    if (options.runners.length === 0) throw new TypeError('Scheduler expects at least one runner');
    const levels = options.priorityLevels ?? 0;
    if (!Number.isInteger(levels) || levels < 0) throw new TypeError(`priorityLevels expects a non-negative integer, but got ${levels}`);
    this.defaultLevel = levels === 0 ? 1 : (options.defaultPriorityLevel ?? 1);
    if (levels > 0 && (this.defaultLevel < 1 || this.defaultLevel > levels)) {
      throw new TypeError(`defaultPriorityLevel expects 1..${levels}, but got ${this.defaultLevel}`);
    }
    this.levels = Array.from({ length: Math.max(1, levels) }, (_, i) => ({
      policy: options.priorityQueuePolicy?.get(i + 1) ?? options.defaultQueuePolicy ?? DEFAULT_QUEUE_POLICY,
      queue: [],
      delayed: [],
    }));
    this.preferred = [...(options.preferredBatchSizes ?? [])].sort((a, b) => a - b);
    this.timeouts = this.levels.some((l) => l.policy.defaultTimeoutMicroseconds > 0 || l.policy.allowTimeoutOverride);
    this.idle = options.runners.map((_, i) => i);
    this.counters = options.runners.map(() => ({ executions: 0, busyNs: 0 }));
    this.clock = options.clock ?? realClock;
  }

  /**
   * Queues a request. Rejects at once with INVALID_ARGUMENT for a priority
   * outside 0..priority_levels, RESOURCE_EXHAUSTED when its level's queue is
   * full, UNAVAILABLE once draining.
   */
  schedule(request: ScheduledRequest): Promise<Map<string, Tensor>> {
    if (this.closed) return Promise.reject(unavailable(`model '${this.options.model}' is being unloaded and accepts no new requests`));
    let level: Level;
    try {
      level = this.levels[this.levelOf(request.priority ?? 0) - 1];
    } catch (error) {
      return Promise.reject(error);
    }
    const { maxQueueSize } = level.policy;
    if (maxQueueSize > 0 && level.queue.length + level.delayed.length >= maxQueueSize) {
      this.options.stats.requestFailed(0);
      return Promise.reject(
        new InferenceError(
          InferenceErrorCode.ResourceExhausted,
          `Exceeds maximum queue size: model '${this.options.model}' queues at most ${maxQueueSize} request(s)${this.levels.length > 1 ? ` at priority level ${this.levels.indexOf(level) + 1}` : ''}, got one more while ${maxQueueSize} wait`,
        ),
      );
    }
    const arrivedAt = this.clock.now();
    const timeoutUs = effectiveTimeout(level.policy, request.timeoutMicroseconds ?? 0);
    return new Promise((resolve, reject) => {
      const { signal } = request;
      const pending: Pending = {
        ...request,
        signature: signatureOf(request.inputs),
        arrivedAt,
        deadline: timeoutUs > 0 ? arrivedAt + BigInt(timeoutUs) * NS_PER_US : undefined,
        resolve,
        reject,
      };
      if (signal) {
        if (signal.aborted) {
          reject(cancelled(this.options.model));
          return;
        }
        const onAbort = () => this.cancel(pending);
        signal.addEventListener('abort', onAbort, { once: true });
        pending.resolve = (outputs) => {
          signal.removeEventListener('abort', onAbort);
          resolve(outputs);
        };
        pending.reject = (error) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        };
      }
      level.queue.push(pending);
      this.pump(false);
    });
  }

  /** Requests waiting for a batch (not yet executing). */
  get pendingCount(): number {
    return this.levels.reduce((n, l) => n + l.queue.length + l.delayed.length, 0);
  }

  /** Executions and busy time of each instance, in runner order. */
  instanceCounters(): InstanceCounters[] {
    return this.counters.map((c) => ({ ...c }));
  }

  /**
   * Stops accepting requests, lets queued and running ones finish, then
   * resolves. The runners themselves are closed by the caller.
   */
  async drain(): Promise<void> {
    this.closed = true;
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  // -------------------------------------------------------------- private

  /**
   * Triton's rule: priority 0, or one beyond the model's levels (including any
   * priority for a model without priority_levels), means the default level;
   * only a value that is not a non-negative integer is refused.
   */
  private levelOf(priority: number): number {
    const levels = this.options.priorityLevels ?? 0;
    if (!Number.isInteger(priority) || priority < 0) {
      throw invalidArgument(`invalid priority for model '${this.options.model}': expected a non-negative integer (0 or beyond ${levels}: the default level ${this.defaultLevel}), got ${priority}`);
    }
    return priority === 0 || priority > levels ? this.defaultLevel : priority;
  }

  /** A request aborted by its caller: dropped if it still waits; one already executing runs to the end. */
  private cancel(pending: Pending): void {
    const queued = this.levels.some((l) => l.queue.includes(pending) || l.delayed.includes(pending));
    if (!queued) return;
    this.remove([pending]);
    this.options.stats.requestFailed(Number(this.clock.now() - pending.arrivedAt));
    pending.reject(cancelled(this.options.model));
    if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
  }

  /** Queued requests in service order (see the file comment). */
  private ordered(): Pending[] {
    return this.levels.flatMap((l) => [...l.queue, ...l.delayed]);
  }

  private remove(batch: readonly Pending[]): void {
    const taken = new Set(batch);
    for (const level of this.levels) {
      level.queue = level.queue.filter((p) => !taken.has(p));
      level.delayed = level.delayed.filter((p) => !taken.has(p));
    }
  }

  /** Settles (REJECT) or demotes (DELAY) every queued request whose timeout has passed. */
  private expire(now: bigint): void {
    for (const level of this.levels) {
      const expired = level.queue.filter((p) => p.deadline !== undefined && p.deadline <= now);
      if (expired.length === 0) continue;
      level.queue = level.queue.filter((p) => !expired.includes(p));
      for (const p of expired) {
        if (level.policy.timeoutAction === 'DELAY') {
          p.deadline = undefined;
          level.delayed.push(p);
        } else {
          this.options.stats.requestFailed(Number(now - p.arrivedAt));
          p.reject(unavailable(`Request timeout expired: model '${this.options.model}' waited ${Number(now - p.arrivedAt) / 1000} µs in the queue, longer than its timeout`));
        }
      }
    }
    if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
  }

  /** Keeps one timer on the earliest queue deadline, so REJECT happens on time even while every instance is busy. */
  private armDeadlineTimer(): void {
    let earliest: bigint | undefined;
    for (const level of this.levels) for (const p of level.queue) if (p.deadline !== undefined && (earliest === undefined || p.deadline < earliest)) earliest = p.deadline;
    if (earliest === this.deadlineTimerAt) return;
    this.cancelDeadlineTimer?.();
    this.cancelDeadlineTimer = undefined;
    this.deadlineTimerAt = earliest;
    if (earliest === undefined) return;
    const delay = Math.max(1, Number(earliest - this.clock.now()));
    this.cancelDeadlineTimer = this.clock.setTimer(() => {
      this.cancelDeadlineTimer = undefined;
      this.deadlineTimerAt = undefined;
      this.pump(false);
    }, delay);
  }

  /**
   * Forms and starts batches while an instance is idle. `delayTimerFired`:
   * called by the queue-delay timer, which for a 0 delay is what ends the wait.
   */
  private pump(delayTimerFired: boolean): void {
    const now = this.clock.now();
    if (this.timeouts) {
      this.expire(now);
      this.armDeadlineTimer();
    }
    // Under load every instance is busy when a request arrives: nothing to form until one is free.
    if (this.idle.length === 0) return;
    const { dynamicBatching, maxBatchSize } = this.options;
    const delayNs = BigInt(this.options.maxQueueDelayMicroseconds ?? 0) * NS_PER_US;
    while (this.idle.length > 0) {
      const ordered = this.ordered();
      if (ordered.length === 0) break;
      if (!dynamicBatching || maxBatchSize === 0) {
        this.start([ordered[0]]);
        continue;
      }
      const candidate = this.candidate(ordered);
      const size = candidate.reduce((n, p) => n + p.batchSize, 0);
      const delayPassed = delayNs === 0n ? delayTimerFired : now - candidate[0].arrivedAt >= delayNs;
      const preferredPrefix = this.largestPreferredPrefix(candidate);
      const maxPreferred = this.preferred.length ? this.preferred[this.preferred.length - 1] : maxBatchSize;
      if (preferredPrefix > 0 && !delayPassed) {
        this.start(candidate.slice(0, preferredPrefix));
      } else if (delayPassed || size >= maxPreferred) {
        this.start(candidate);
      } else {
        if (!this.cancelDelayTimer) {
          const wait = delayNs === 0n ? 0 : Number(candidate[0].arrivedAt + delayNs - now);
          this.cancelDelayTimer = this.clock.setTimer(() => {
            this.cancelDelayTimer = undefined;
            this.pump(true);
          }, wait);
        }
        return;
      }
    }
    if (this.pendingCount === 0 || this.idle.length === 0) {
      this.cancelDelayTimer?.();
      this.cancelDelayTimer = undefined;
    }
  }

  /** The requests the next batch may hold: same non-batch shapes as the first, within max_batch_size. */
  private candidate(ordered: Pending[]): Pending[] {
    const [first] = ordered;
    const batch = [first];
    let size = first.batchSize;
    for (const p of ordered.slice(1)) {
      if (size >= this.options.maxBatchSize) break;
      if (p.signature === first.signature && size + p.batchSize <= this.options.maxBatchSize) {
        batch.push(p);
        size += p.batchSize;
      }
    }
    return batch;
  }

  /** How many leading requests of `candidate` make the largest preferred batch size; 0 if none does. */
  private largestPreferredPrefix(candidate: Pending[]): number {
    let best = 0;
    let size = 0;
    candidate.forEach((p, i) => {
      size += p.batchSize;
      if (this.preferred.includes(size)) best = i + 1;
    });
    return best;
  }

  private start(batch: Pending[]): void {
    this.remove(batch);
    const index = this.idle.shift()!;
    void this.execute(index, batch).finally(() => {
      this.idle.push(index);
      this.pump(false);
      if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
    });
  }

  private isIdle(): boolean {
    return this.pendingCount === 0 && this.idle.length === this.options.runners.length;
  }

  private async execute(index: number, batch: Pending[]): Promise<void> {
    const { stats, maxBatchSize } = this.options;
    const runner = this.options.runners[index];
    const started = this.clock.now();
    const sizes = batch.map((p) => p.batchSize);
    const total = sizes.reduce((a, b) => a + b, 0);
    let pieces: Array<Map<string, Tensor>>;
    let computeNs = 0;
    /** Requests (by position in the batch) whose rows the runner reported failed. */
    const failedRequests = new Map<number, InferenceError>();
    try {
      const inputs = new Map<string, Tensor>();
      for (const name of batch[0].inputs.keys()) inputs.set(name, concatBatch(batch.map((p) => p.inputs.get(name)!)));
      let outputs: Map<string, Tensor>;
      try {
        outputs = await runner.execute(inputs);
      } catch (error) {
        if (!(error instanceof RowFailures)) throw error;
        outputs = error.outputs;
        let offset = 0;
        batch.forEach((p, i) => {
          for (let row = offset; row < offset + p.batchSize; row++) {
            const rowError = error.failures.get(row);
            if (rowError && !failedRequests.has(i)) failedRequests.set(i, asExecutionError(rowError));
          }
          offset += p.batchSize;
        });
      } finally {
        computeNs = Number(this.clock.now() - started);
        this.counters[index].executions += 1;
        this.counters[index].busyNs += computeNs;
      }
      stats.executed(total, computeNs);
      pieces = batch.map(() => new Map());
      for (const [name, tensor] of outputs) {
        const split = maxBatchSize > 0 ? splitBatch(tensor, sizes) : [tensor];
        split.forEach((t, i) => pieces[i].set(name, t));
      }
    } catch (error) {
      const failure = asExecutionError(error);
      const now = this.clock.now();
      for (const p of batch) {
        stats.requestFailed(Number(now - p.arrivedAt));
        p.reject(failure);
      }
      return;
    }
    const now = this.clock.now();
    batch.forEach((p, i) => {
      const failure = failedRequests.get(i);
      if (failure) {
        stats.requestFailed(Number(now - p.arrivedAt));
        p.reject(failure);
        return;
      }
      stats.requestSucceeded(p.batchSize, Number(now - p.arrivedAt), Number(started - p.arrivedAt), computeNs);
      p.resolve(pieces[i]);
    });
  }
}

function asExecutionError(error: unknown): InferenceError {
  return error instanceof InferenceError ? error : new InferenceError(InferenceErrorCode.Internal, `model execution failed: ${error instanceof Error ? error.message : String(error)}`);
}

const cancelled = (model: string) => unavailable(`request to model '${model}' was cancelled by the client while it waited in the queue`);

/** The queue timeout of a request: the policy's, or the request's own when overrides are allowed and it is shorter. */
function effectiveTimeout(policy: QueuePolicy, requested: number): number {
  const base = policy.defaultTimeoutMicroseconds;
  if (policy.allowTimeoutOverride && requested > 0 && (base === 0 || requested < base)) return requested;
  return base;
}

/** Requests may share a batch only when their non-batch shapes and datatypes agree. */
function signatureOf(inputs: Map<string, Tensor>): string {
  return [...inputs.values()]
    .map((t) => `${t.name}:${t.datatype}:${t.shape.slice(1).join('x')}`)
    .sort()
    .join('|');
}
