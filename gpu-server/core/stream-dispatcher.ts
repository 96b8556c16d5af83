/**
 * Serves a decoupled model version (`model_transaction_policy { decoupled:
 * true }`) whose instances are StreamingRunners. There is no queue here: each
 * runner batches its own live sequences continuously, so a request goes at
 * once to the instance with the fewest live sequences.
 *
 * Contract: `stream()` calls `onResponse` for each response of the request,
 * the last with final=true, then resolves; or rejects (after any responses
 * already delivered) when the runner fails or the request is cancelled
 * without a final response. Aborting `signal` is passed to the runner, which
 * stops the sequence within one decode step.
 *
 * Statistics: per request, inference_stats success or fail (a cancelled
 * request is a failure) and one execution; per response position,
 * Triton's response_stats (success, empty_response, fail, cancel).
 */
import { realClock, type Clock } from './clock';
import { asInferenceError, InferenceError, InferenceErrorCode, unavailable } from './errors';
import type { StreamingRunner } from './runner';
import type { InstanceCounters } from './scheduler';
import type { StatisticsRecorder } from './statistics';
import type { Tensor } from './tensor';

export interface StreamDispatcherOptions {
  /** Names the model in error messages. */
  model: string;
  /** One per instance. */
  runners: StreamingRunner[];
  stats: StatisticsRecorder;
  /** @default realClock */
  clock?: Clock;
}

export type StreamResponseHandler = (outputs: Map<string, Tensor>, final: boolean) => void;

export class StreamDispatcher {
  private readonly clock: Clock;
  /** Requests this dispatcher started on each instance and that have not ended. */
  private readonly live: number[];
  private readonly counters: InstanceCounters[];
  /** When each instance last went from no live request to one. */
  private readonly busySince: bigint[];
  private closed = false;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(private readonly options: StreamDispatcherOptions) {
    if (options.runners.length === 0) throw new TypeError('StreamDispatcher expects at least one runner');
    this.clock = options.clock ?? realClock;
    this.live = options.runners.map(() => 0);
    this.busySince = options.runners.map(() => 0n);
    this.counters = options.runners.map(() => ({ executions: 0, busyNs: 0 }));
  }

  async stream(inputs: ReadonlyMap<string, Tensor>, onResponse: StreamResponseHandler, signal: AbortSignal): Promise<void> {
    if (this.closed) throw unavailable(`model '${this.options.model}' is being unloaded and accepts no new requests`);
    const { stats } = this.options;
    const index = this.leastLoaded();
    const runner = this.options.runners[index];
    const started = this.clock.now();
    if (this.live[index]++ === 0) this.busySince[index] = started;
    let last = started;
    let position = 0;
    let finalSeen = false;
    const elapsed = () => {
      const now = this.clock.now();
      const ns = Number(now - last);
      last = now;
      return ns;
    };
    let succeeded = false;
    const succeed = () => {
      if (succeeded) return;
      succeeded = true;
      const total = Number(this.clock.now() - started);
      stats.executed(1, total);
      stats.requestSucceeded(1, total, 0, total);
    };
    const sink = {
      response: (outputs: Map<string, Tensor>, final: boolean) => {
        if (finalSeen) return; // a runner bug must not reach the client as a second final response
        finalSeen = final;
        stats.response(position++, outputs.size === 0 ? 'empty_response' : 'success', elapsed());
        // Counted before the client hears of it: a client reading the statistics after its final response sees its request.
        if (final && !signal.aborted) succeed();
        onResponse(outputs, final);
      },
    };
    try {
      await runner.stream(inputs, sink, signal);
      if (!finalSeen) throw new InferenceError(InferenceErrorCode.Internal, `model '${this.options.model}' ended a request without its final response`);
      if (signal.aborted && !succeeded) {
        const total = Number(this.clock.now() - started);
        stats.executed(1, total);
        stats.response(position, 'cancel', 0);
        stats.requestFailed(total);
      } else {
        succeed();
      }
    } catch (error) {
      // The request already got its final response (the worker died, or a cancel came, just after it): it succeeded.
      if (finalSeen) {
        succeed();
        return;
      }
      stats.response(position, signal.aborted ? 'cancel' : 'fail', elapsed());
      stats.requestFailed(Number(this.clock.now() - started));
      if (signal.aborted) throw new InferenceError(InferenceErrorCode.Unavailable, `request to model '${this.options.model}' was cancelled`);
      const failure = asInferenceError(error);
      throw failure.code === InferenceErrorCode.Internal && !(error instanceof InferenceError)
        ? new InferenceError(InferenceErrorCode.Internal, `model execution failed: ${failure.message}`)
        : failure;
    } finally {
      this.counters[index].executions += 1;
      if (--this.live[index] === 0) this.counters[index].busyNs += Number(this.clock.now() - this.busySince[index]);
      if (this.isIdle()) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  /** Live sequences on each instance, as the runners report them. */
  activeSequences(): number[] {
    return this.options.runners.map((r) => r.activeSequences);
  }

  /** Requests (one per stream) and time with at least one live sequence, per instance. */
  instanceCounters(): InstanceCounters[] {
    const now = this.clock.now();
    return this.counters.map((c, i) => ({ executions: c.executions, busyNs: c.busyNs + (this.live[i] > 0 ? Number(now - this.busySince[i]) : 0) }));
  }

  /** Refuses new requests and resolves once every live one has ended. */
  async drain(): Promise<void> {
    this.closed = true;
    if (this.isIdle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  // -------------------------------------------------------------- private

  /**
   * The instance with the fewest live sequences. A runner in a worker thread
   * learns of a request a message later than we send it, so our own count of
   * requests started there counts too.
   */
  private leastLoaded(): number {
    let best = 0;
    let bestLoad = Infinity;
    this.options.runners.forEach((runner, i) => {
      const load = Math.max(runner.activeSequences, this.live[i]);
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    });
    return best;
  }

  private isIdle(): boolean {
    return this.live.every((n) => n === 0);
  }
}
