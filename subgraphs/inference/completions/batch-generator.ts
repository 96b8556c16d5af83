/**
 * Non-streamed generation on batching models (max_batch_size > 0): the
 * prompts of one batch (ModelLoaders) become the rows of a single ModelInfer
 * call — the same contract as the embedding batcher: one call per batch, one result
 * per prompt in order, and a failed call fails every prompt of its batch.
 * Prompts of different priorities (priority.ts) go in different batches,
 * since a call has one priority.
 */
import { randomUUID } from 'node:crypto';
import { generationOutputs, generationRequest, type GenerationOutput, type SamplingParameters } from './generation-tensors';
import type { ModelInfo } from '../models/model-catalog';
import { CLEARED, ModelLoaders, runCleared, type Cleared } from '../gpu-tier/model-loaders';
import type { TritonApi } from '../gpu-tier/triton-client';

interface Job extends Cleared {
  prompt: string;
  sampling: SamplingParameters;
  priority: number | undefined;
}

export class BatchGenerator {
  private readonly loaders: ModelLoaders<Job, GenerationOutput>;

  constructor(
    private readonly triton: TritonApi,
    windowMs: number,
    private readonly deadlineMs: number,
  ) {
    this.loaders = new ModelLoaders(windowMs, (model, jobs) => this.batch(model, jobs));
  }

  /** `cleared` is the request's reservation with billing: the prompt joins a batch at once, and its GPU call waits for it (runCleared). */
  generate(model: ModelInfo, prompt: string, sampling: SamplingParameters, priority?: number, cleared: Promise<unknown> = CLEARED): Promise<GenerationOutput> {
    return this.loaders.of(model, String(priority ?? '')).load({ prompt, sampling, priority, cleared });
  }

  private batch(model: ModelInfo, jobs: readonly Job[]): Promise<(GenerationOutput | Error)[]> {
    return runCleared(jobs, (cleared) => this.call(model, cleared));
  }

  private async call(model: ModelInfo, jobs: readonly Job[]): Promise<GenerationOutput[]> {
    const request = generationRequest(
      model,
      `batch-${randomUUID()}`,
      jobs.map((j) => j.prompt),
      jobs.map((j) => j.sampling),
      false,
      jobs[0].priority,
    );
    const response = await this.triton.modelInfer(request, this.deadlineMs);
    return generationOutputs(model, response, jobs.length);
  }
}
