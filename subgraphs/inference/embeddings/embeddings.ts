import { codedError, ErrorCode } from '../../../lib/errors';
import type { EmbeddingBatcher } from './embedding-batcher';
import { gpuError } from '../gpu-tier/gpu-errors';
import type { Caller, Metering } from '../billing/usage-billing';
import type { ModelCatalog, ModelInfo } from '../models/model-catalog';
import { priorityFor, type PriorityByScope } from '../gpu-tier/priority';
import { servableModel } from '../models/servable-model';
import { decodeTokenRows } from './token-decoder';

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

/** `embed`'s arguments besides `model`: exactly one is given. Token ids are in the model's tokenizer (token-decoder.ts). */
export interface EmbedArguments {
  texts?: readonly string[] | null;
  tokens?: readonly (readonly number[])[] | null;
}

type EmbedInput = { texts: readonly string[] } | { tokens: readonly (readonly number[])[] };

/** The one input `embed` was given; neither or both → BAD_USER_INPUT naming the argument. */
export function embedInput({ texts, tokens }: EmbedArguments): EmbedInput {
  if (texts != null && tokens == null) return { texts };
  if (tokens != null && texts == null) return { tokens };
  throw codedError(ErrorCode.BadUserInput, `embed expects exactly one of texts (strings) or tokens (arrays of token ids), but got ${texts == null ? 'neither' : 'both'}`, {
    field: texts == null ? 'texts' : 'tokens',
  });
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

  /** `embed(texts:)`. */
  embed(caller: Caller, texts: readonly string[], modelId?: string | null): Promise<EmbeddingResult[]> {
    return this.run(caller, 'texts', texts.length, modelId, () => texts);
  }

  /** `embed(tokens:)`: each array of ids decoded with the model's tokenizer, then embedded (and billed) as that text. */
  embedTokens(caller: Caller, tokens: readonly (readonly number[])[], modelId?: string | null): Promise<EmbeddingResult[]> {
    return this.run(caller, 'tokens', tokens.length, modelId, (model) => decodeTokenRows(model.id, model.tokenizer, tokens));
  }

  private async run(caller: Caller, argument: 'texts' | 'tokens', count: number, modelId: string | null | undefined, textsOf: (model: ModelInfo) => readonly string[]): Promise<EmbeddingResult[]> {
    const { identity } = caller;
    if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, 'embed requires a signed-in caller: send "Authorization: Bearer <token>"');
    if (count === 0 || count > this.limits.maxTexts) {
      throw codedError(ErrorCode.BadUserInput, `embed expects 1 to ${this.limits.maxTexts} ${argument}, but got ${count}`, { field: argument });
    }
    const model = await servableModel(this.catalog, modelId, 'EMBEDDING', { label: 'embed', path: 'model' });
    const texts = textsOf(model);
    const long = texts.findIndex((text) => text.length > this.limits.maxTextChars);
    if (long >= 0) {
      const which = argument === 'texts' ? `texts[${long}]` : `the text of tokens[${long}]`;
      throw codedError(ErrorCode.BadUserInput, `embed expects each text to be at most ${this.limits.maxTextChars} characters, but ${which} has ${texts[long].length}`, {
        field: `${argument}[${long}]`,
      });
    }
    const vectors = await this.metering.embedding(caller, model, texts, (reserved) =>
      this.embedder.embed(model, texts, priorityFor(identity, this.priorities), reserved).catch((error: unknown) => {
        throw gpuError(error, model.id);
      }),
    );
    return vectors.map((vector, index) => ({ index, dimensions: vector.length, vector: Array.from(vector), model }));
  }
}
