import DataLoader from 'dataloader';
import type { ModelInfo } from '../models/model-catalog';

/**
 * One DataLoader per model version, for the calls that batch on the GPU tier
 * (embeddings, batched completions): every key waiting for the same model
 * within `windowMs` becomes one batch, cut at the model's `max_batch_size`,
 * and `batch` makes one GPU call for it.
 *
 * Why a window instead of DataLoader's default (one tick): concurrent GraphQL
 * operations arrive on separate HTTP requests, so their resolvers do not share
 * a tick; a couple of milliseconds lets them coalesce across operations. A full
 * batch leaves without waiting for the window. `windowMs` 0 turns coalescing
 * off: one call per key (what the batching benchmarks compare against).
 *
 * `partition` splits a model's keys further into batches that must not mix:
 * one GPU call carries one request priority, so callers of different
 * priorities batch apart.
 */
export class ModelLoaders<K, V> {
  private readonly loaders = new Map<string, DataLoader<K, V>>();

  constructor(
    private readonly windowMs: number,
    private readonly batch: (model: ModelInfo, keys: readonly K[]) => Promise<(V | Error)[]>,
  ) {}

  of(model: ModelInfo, partition = ''): DataLoader<K, V> {
    const key = `${model.id}@${model.version}:${model.maxBatchSize}:${partition}`;
    let loader = this.loaders.get(key);
    if (!loader) {
      const coalesce = this.windowMs > 0;
      loader = new DataLoader((keys) => this.batch(model, keys), {
        cache: false,
        maxBatchSize: coalesce ? Math.max(1, model.maxBatchSize) : 1,
        batchScheduleFn: (dispatch) => (coalesce ? setTimeout(dispatch, this.windowMs) : setImmediate(dispatch)),
      });
      this.loaders.set(key, loader);
    }
    return loader;
  }
}

/** A key that may not reach the GPU before `cleared` resolves: its request's reservation with billing. */
export interface Cleared {
  cleared: Promise<unknown>;
}

export const CLEARED: Promise<unknown> = Promise.resolve();

/**
 * Runs one GPU call for the keys of a batch whose reservations went through,
 * once every reservation in it has settled, and answers the others with their
 * refusal. Keys join their batch while their reservation is pending, so
 * requests that arrive together share one call whatever their reservations'
 * timing, and no GPU work runs for a request that is not paid for.
 */
export async function runCleared<K extends Cleared, V>(keys: readonly K[], run: (keys: readonly K[]) => Promise<V[]>): Promise<(V | Error)[]> {
  const clearances = await Promise.allSettled(keys.map((k) => k.cleared));
  const go = keys.filter((_, i) => clearances[i].status === 'fulfilled');
  const results = go.length ? await run(go) : [];
  let next = 0;
  return clearances.map((clearance) => (clearance.status === 'fulfilled' ? results[next++] : toError(clearance.reason)));
}

const toError = (reason: unknown): Error => (reason instanceof Error ? reason : new Error(String(reason)));
