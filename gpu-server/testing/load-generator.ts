/**
 * A plain Triton gRPC client and a closed-loop load generator, for the
 * benchmarks in bench/ (the same client shape a Triton user would write with
 * @grpc/grpc-js and the protos: no server code involved).
 */
import * as grpc from '@grpc/grpc-js';
import { loadTritonProto } from '../../protocol/triton/loader';
import { encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import type { ModelInferRequest, ModelInferResponse__Output as ModelInferResponse } from '../../protocol/triton/messages';

export interface TritonClient {
  infer(request: ModelInferRequest): Promise<ModelInferResponse>;
  close(): void;
}

/** A client on its own channel to `127.0.0.1:port`. */
export function tritonClient(port: number): TritonClient {
  const pkg = loadTritonProto();
  const client = new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  return {
    infer: (request) => new Promise((resolve, reject) => client.ModelInfer(request, (error, value) => (error ? reject(error) : resolve(value!)))),
    close: () => client.close(),
  };
}

/** A ModelInfer request embedding `texts` with a sluice-embed-shaped model. */
export function embedRequest(model: string, texts: string[]): ModelInferRequest {
  return { model_name: model, inputs: [{ name: 'text', datatype: 'BYTES', shape: [texts.length, 1] }], raw_input_contents: [encodeBytesTensor(texts)] };
}

export interface LoadResult {
  requests: number;
  seconds: number;
  perSecond: number;
  /** Per-request latencies in ms. */
  latenciesMs: number[];
}

/**
 * Keeps `concurrency` requests in flight (each worker sends its next request
 * when its previous one is answered) until `total` requests are done.
 */
export async function closedLoop(concurrency: number, total: number, send: (i: number) => Promise<unknown>): Promise<LoadResult> {
  let next = 0;
  const latenciesMs: number[] = [];
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = process.hrtime.bigint();
        await send(i);
        latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { requests: total, seconds, perSecond: total / seconds, latenciesMs };
}

/** `count` distinct, sentence-like texts (so no cache or shortcut could apply). */
export function sampleTexts(count: number, words = 16): string[] {
  const vocabulary = [
    'river',
    'market',
    'engine',
    'quiet',
    'harvest',
    'signal',
    'winter',
    'copper',
    'garden',
    'orbit',
    'ledger',
    'canvas',
    'thunder',
    'violet',
    'harbor',
    'puzzle',
    'meadow',
    'lantern',
    'glacier',
    'compass',
  ];
  return Array.from({ length: count }, (_, i) => Array.from({ length: words }, (_, j) => vocabulary[(i * 7 + j * 13 + ((i * j) % 5)) % vocabulary.length]).join(' ') + ` #${i}`);
}

/**
 * Runs each of `variants` for `rounds` rounds, alternating (a, b, a, b, …),
 * and returns every variant's per-round results: on a shared machine, load
 * that comes and goes then hits both variants alike, and the median of the
 * per-round ratios is a fair figure.
 */
export async function alternate<V extends Array<() => Promise<unknown>>>(rounds: number, variants: [...V]): Promise<{ [K in keyof V]: Array<Awaited<ReturnType<V[K]>>> }> {
  const results: unknown[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (const [i, run] of variants.entries()) results[i].push(await run());
  }
  return results as { [K in keyof V]: Array<Awaited<ReturnType<V[K]>>> };
}

/** The median of `values`. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
