import { codedError, ErrorCode } from '../../../lib/errors';
import type { EmbeddingBatcher } from './embedding-batcher';
import { gpuError } from '../gpu-tier/gpu-errors';
import type { Caller, Metering } from '../billing/usage-billing';
import type { ModelCatalog, ModelInfo } from '../models/model-catalog';
import { priorityFor, type PriorityByScope } from '../gpu-tier/priority';
import { servableModel } from '../models/servable-model';

export interface EmbeddingLimits {
  maxTexts: number;
  maxTextChars: number;
}

export interface EmbeddingResult {
  index: number;
  dimensions: number;
  vector: number[];
  model: ModelInfo;
}

/** `embed`: who may call it, which model serves it, what input is valid. */
export class Embeddings {
  constructor(
    private readonly catalog: ModelCatalog,
    private readonly embedder: EmbeddingBatcher,
    private readonly limits: EmbeddingLimits,
    private readonly priorities: PriorityByScope,
    private readonly metering: Metering,
  ) {}

  async embed(caller: Caller, texts: string[], modelId?: string | null): Promise<EmbeddingResult[]> {
    const { identity } = caller;
    if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, 'embed requires a signed-in caller: send "Authorization: Bearer <token>"');
    if (texts.length === 0 || texts.length > this.limits.maxTexts) {
      throw codedError(ErrorCode.BadUserInput, `embed expects 1 to ${this.limits.maxTexts} texts, but got ${texts.length}`, { field: 'texts' });
    }
    const long = texts.findIndex((text) => text.length > this.limits.maxTextChars);
    if (long >= 0) {
      throw codedError(ErrorCode.BadUserInput, `embed expects each text to be at most ${this.limits.maxTextChars} characters, but texts[${long}] has ${texts[long].length}`, {
        field: `texts[${long}]`,
      });
    }
    const model = await servableModel(this.catalog, modelId, 'EMBEDDING', { label: 'embed', path: 'model' });
    const vectors = await this.metering.embedding(caller, model, texts, (reserved) =>
      this.embedder.embed(model, texts, priorityFor(identity, this.priorities), reserved).catch((error: unknown) => {
        throw gpuError(error, model.id);
      }),
    );
    return vectors.map((vector, index) => ({ index, dimensions: vector.length, vector: Array.from(vector), model }));
  }
}
