import { codedError, ErrorCode } from '../../lib/errors';
import type { InferenceClient, ModelSummary } from './inference-client';

/**
 * Which models the knowledge base embeds and answers with, learned from the
 * inference service's `models` (never a hard-coded list) and kept briefly.
 * Documents and queries must be embedded by the same model to be comparable,
 * so the embedding model is configured (KNOWLEDGE_EMBEDDING_MODEL) or, by
 * default, the first embedding model the GPU tier lists.
 */
export class ModelChoice {
  private cached?: { at: number; models: Promise<ModelSummary[]> };

  constructor(
    private readonly inference: InferenceClient,
    private readonly configured: { embedding?: string; cacheMs: number },
  ) {}

  /** The embedding model to use now; MODEL_NOT_FOUND / MODEL_NOT_READY when there is none to use. */
  async current(identityHeader: string): Promise<ModelSummary> {
    const models = await this.list(identityHeader);
    const wanted = this.configured.embedding;
    const model = wanted ? models.find((m) => m.id === wanted) : models.find((m) => m.kind === 'EMBEDDING');
    if (!model) {
      throw codedError(
        ErrorCode.ModelNotFound,
        wanted ? `the embedding model ${JSON.stringify(wanted)} (KNOWLEDGE_EMBEDDING_MODEL) is not served by the GPU tier` : 'the GPU tier serves no embedding model',
        wanted ? { model: wanted } : {},
      );
    }
    if (model.kind !== 'EMBEDDING')
      throw codedError(ErrorCode.ModelNotFound, `model ${JSON.stringify(model.id)} is a ${model.kind} model, but the knowledge base needs an EMBEDDING model`, { model: model.id });
    if (!model.ready) throw codedError(ErrorCode.ModelNotReady, `the embedding model ${JSON.stringify(model.id)} is not ready; try again shortly`, { model: model.id });
    return model;
  }

  /** A text-generation model's context length, or null when it declares none (the id is checked by inference itself). */
  async contextLength(identityHeader: string, modelId: string | null | undefined): Promise<number | null> {
    const models = await this.list(identityHeader);
    const model = modelId ? models.find((m) => m.id === modelId) : models.find((m) => m.kind === 'TEXT_GENERATION' && m.ready);
    return model?.contextLength ?? null;
  }

  embed(identityHeader: string, model: ModelSummary, texts: readonly string[]): Promise<Float32Array[]> {
    return this.inference.embed(identityHeader, texts, model.id);
  }

  private list(identityHeader: string): Promise<ModelSummary[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > this.configured.cacheMs) {
      const models = this.inference.models(identityHeader);
      this.cached = { at: now, models };
      // A failed look-up is not kept: the next caller asks again.
      models.catch(() => {
        if (this.cached?.models === models) this.cached = undefined;
      });
    }
    return this.cached.models;
  }
}
