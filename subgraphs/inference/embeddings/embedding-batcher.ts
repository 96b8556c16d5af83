import { encodeBytesTensor } from '../../../protocol/triton/bytes-tensor';
import type { ModelInfo } from '../models/model-catalog';
import { CLEARED, ModelLoaders, runCleared, type Cleared } from '../gpu-tier/model-loaders';
import type { TritonApi } from '../gpu-tier/triton-client';

interface EmbedKey extends Cleared {
  text: string;
  priority: number | undefined;
}

/**
 * Embeddings through DataLoader: every text waiting for the same model within
 * one batching window becomes one element of a single ModelInfer call.
 *
 * Contract of the batch function: it makes exactly one ModelInfer call for the
 * batch it is given (DataLoader has already cut it to the model's
 * `max_batch_size`), and resolves to one vector per text, in order. If the
 * call fails, or the response does not hold exactly `texts.length` vectors,
 * every text of the batch rejects with the same error — no caller is left
 * waiting and none gets another's vector.
 *
 * Batches are formed per model (and per priority, priority.ts: one call has
 * one) by ModelLoaders (a short window, so concurrent operations coalesce).
 */
export class EmbeddingBatcher {
  private readonly loaders: ModelLoaders<EmbedKey, Float32Array>;

  constructor(
    private readonly triton: TritonApi,
    windowMs: number,
  ) {
    this.loaders = new ModelLoaders(windowMs, (model, keys) => this.batch(model, keys));
  }

  /**
   * One vector per text. `cleared` is the request's reservation with billing:
   * the texts join a batch at once, and its GPU call waits for it (runCleared).
   */
  embed(model: ModelInfo, texts: readonly string[], priority?: number, cleared: Promise<unknown> = CLEARED): Promise<Float32Array[]> {
    return this.loaders
      .of(model, String(priority ?? ''))
      .loadMany(texts.map((text) => ({ text, priority, cleared })))
      .then((results) =>
        results.map((result) => {
          if (result instanceof Error) throw result;
          return result;
        }),
      );
  }

  private batch(model: ModelInfo, keys: readonly EmbedKey[]): Promise<(Float32Array | Error)[]> {
    return runCleared(keys, (cleared) => this.call(model, cleared));
  }

  private async call(model: ModelInfo, keys: readonly EmbedKey[]): Promise<Float32Array[]> {
    const texts = keys.map((k) => k.text);
    // A model with max_batch_size 0 takes no batch dimension: [1] per request.
    const shape = model.maxBatchSize > 0 ? [texts.length, 1] : [texts.length];
    const priority = keys[0].priority;
    const response = await this.triton.modelInfer({
      model_name: model.id,
      model_version: model.version,
      inputs: [{ name: 'text', datatype: 'BYTES', shape }],
      outputs: [{ name: 'embedding' }],
      raw_input_contents: [encodeBytesTensor(texts)],
      ...(priority === undefined ? {} : { parameters: { priority: { int64_param: priority } } }),
    });
    const index = response.outputs.findIndex((output) => output.name === 'embedding');
    const output = response.outputs[index];
    const raw = response.raw_output_contents[index];
    if (!output || !raw || output.datatype !== 'FP32' || output.shape.length !== 2 || output.shape[0] !== texts.length) {
      throw new Error(`ModelInfer on ${model.id} expects an "embedding" FP32 output of shape [${texts.length}, D], but got ${output ? `${output.datatype} [${output.shape.join(', ')}]` : 'none'}`);
    }
    const dims = output.shape[1];
    if (raw.length !== texts.length * dims * 4) {
      throw new Error(`ModelInfer on ${model.id} returned ${raw.length} bytes for an FP32 [${texts.length}, ${dims}] tensor; expected ${texts.length * dims * 4}`);
    }
    // Copy out of the gRPC buffer: it may not be 4-byte aligned, and callers keep the vectors.
    const all = new Float32Array(new Uint8Array(raw).buffer);
    return texts.map((_, i) => all.slice(i * dims, (i + 1) * dims));
  }
}
