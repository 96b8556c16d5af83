import DataLoader from 'dataloader';
import type { ModelInfo } from './model-catalog';

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
