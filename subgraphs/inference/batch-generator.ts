/**
 * Non-streamed generation on batching models (max_batch_size > 0): every
 * prompt waiting for the same model within one batching window becomes one
 * row of a single ModelInfer call, cut at the model's max_batch_size — the
 * same DataLoader contract as the embedder: one call per batch, one result
 * per prompt in order, and a failed call fails every prompt of its batch.
 * `windowMs` 0 disables coalescing across operations (one call per prompt),
 * which is what the batching benchmark compares against.
 */
import { randomUUID } from 'node:crypto';
import DataLoader from 'dataloader';
import { generationOutputs, generationRequest, type GenerationOutput, type SamplingParameters } from './generation-tensors';
import type { ModelInfo } from './model-catalog';
import type { TritonApi } from './triton-client';

interface Job {
  prompt: string;
  sampling: SamplingParameters;
}

export class BatchGenerator {
  private readonly loaders = new Map<string, DataLoader<Job, GenerationOutput>>();

  constructor(
    private readonly triton: TritonApi,
    private readonly windowMs: number,
    private readonly deadlineMs: number,
  ) {}

  generate(model: ModelInfo, prompt: string, sampling: SamplingParameters): Promise<GenerationOutput> {
    return this.loader(model).load({ prompt, sampling });
  }

  private loader(model: ModelInfo): DataLoader<Job, GenerationOutput> {
    const key = `${model.id}@${model.version}:${model.maxBatchSize}`;
    let loader = this.loaders.get(key);
    if (!loader) {
      loader = new DataLoader((jobs) => this.batch(model, jobs), {
        cache: false,
        maxBatchSize: this.windowMs > 0 ? Math.max(1, model.maxBatchSize) : 1,
        batchScheduleFn: (dispatch) => (this.windowMs > 0 ? setTimeout(dispatch, this.windowMs) : setImmediate(dispatch)),
      });
      this.loaders.set(key, loader);
    }
    return loader;
  }

  private async batch(model: ModelInfo, jobs: readonly Job[]): Promise<GenerationOutput[]> {
    const request = generationRequest(
      model,
      `batch-${randomUUID()}`,
      jobs.map((j) => j.prompt),
      jobs.map((j) => j.sampling),
      false,
    );
    const response = await this.triton.modelInfer(request, this.deadlineMs);
    return generationOutputs(model, response, jobs.length);
  }
}
