/**
 * Triton's per-model-version statistics (ModelStatistics): request outcomes,
 * queue and compute durations, and per-batch-size execution counts.
 * `inference_count` counts samples (a batch-8 request adds 8);
 * `execution_count` counts model executions (one per formed batch; for a
 * decoupled model, one per request, as Triton's vLLM backend reports it).
 * `response_stats` (decoupled models) counts the n-th response of requests,
 * keyed "0", "1", …: success, empty final responses, failures and
 * cancellations at that position.
 */
/*
 * The shapes are those of grpc_service.proto's messages (the ModelStatistics
 * RPC returns them as they are) but written out here: the core fills every
 * field, while the generated receive types must allow absent messages (null).
 */
interface Duration {
  count: number;
  ns: number;
}

interface InferStatistics {
  success: Duration;
  fail: Duration;
  queue: Duration;
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

interface BatchStatistics {
  batch_size: number;
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

/** Statistics of the n-th response of decoupled requests (Triton's response_stats, keyed "0", "1", …). */
interface ResponseStatistics {
  compute_infer: Duration;
  compute_output: Duration;
  success: Duration;
  fail: Duration;
  empty_response: Duration;
  cancel: Duration;
}

export interface ModelVersionStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: InferStatistics;
  batch_stats: BatchStatistics[];
  /** Only decoupled models fill it. */
  response_stats: Record<string, ResponseStatistics>;
}

/** What became of one response of a decoupled request. */
export type ResponseOutcome = 'success' | 'fail' | 'empty_response' | 'cancel';

const zero = (): Duration => ({ count: 0, ns: 0 });
const add = (d: Duration, ns: number) => {
  d.count += 1;
  d.ns += Math.max(0, Math.round(ns));
};

export class StatisticsRecorder {
  private readonly stats: ModelVersionStatistics;
  private readonly batches = new Map<number, BatchStatistics>();
  private readonly responses = new Map<number, ResponseStatistics>();

  constructor(name: string, version: string) {
    this.stats = {
      name,
      version,
      last_inference: 0,
      inference_count: 0,
      execution_count: 0,
      inference_stats: { success: zero(), fail: zero(), queue: zero(), compute_input: zero(), compute_infer: zero(), compute_output: zero() },
      batch_stats: [],
      response_stats: {},
    };
  }

  /** A request finished: `ns` from its arrival to its response. */
  requestSucceeded(batchSize: number, ns: number, queueNs: number, computeNs: number): void {
    const s = this.stats;
    add(s.inference_stats.success, ns);
    add(s.inference_stats.queue, queueNs);
    add(s.inference_stats.compute_infer, computeNs);
    add(s.inference_stats.compute_input, 0);
    add(s.inference_stats.compute_output, 0);
    s.inference_count += batchSize;
    s.last_inference = Date.now();
  }

  requestFailed(ns: number): void {
    add(this.stats.inference_stats.fail, ns);
    this.stats.last_inference = Date.now();
  }

  /** One model execution of `batchSize` samples took `computeNs`. */
  executed(batchSize: number, computeNs: number): void {
    this.stats.execution_count += 1;
    let b = this.batches.get(batchSize);
    if (!b) {
      b = { batch_size: batchSize, compute_input: zero(), compute_infer: zero(), compute_output: zero() };
      this.batches.set(batchSize, b);
    }
    add(b.compute_infer, computeNs);
    add(b.compute_input, 0);
    add(b.compute_output, 0);
  }

  /** The response at position `index` of a decoupled request ended as `outcome`, `ns` after the previous one. */
  response(index: number, outcome: ResponseOutcome, ns: number): void {
    let r = this.responses.get(index);
    if (!r) {
      r = { compute_infer: zero(), compute_output: zero(), success: zero(), fail: zero(), empty_response: zero(), cancel: zero() };
      this.responses.set(index, r);
    }
    add(r[outcome], ns);
    if (outcome === 'success' || outcome === 'empty_response') {
      add(r.compute_infer, ns);
      add(r.compute_output, 0);
    }
  }

  snapshot(): ModelVersionStatistics {
    const copy = structuredClone(this.stats);
    copy.batch_stats = [...this.batches.values()].sort((a, b) => a.batch_size - b.batch_size).map((b) => structuredClone(b));
    copy.response_stats = Object.fromEntries([...this.responses].sort(([a], [b]) => a - b).map(([i, r]) => [String(i), structuredClone(r)]));
    return copy;
  }
}
