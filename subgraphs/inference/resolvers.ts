import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { CompletionInput } from './completions/completion-request';
import type { CompletionChunk, Completions } from './completions/completions';
import type { IdempotentCompletions } from './completions/idempotent-completions';
import type { ResumableStreams } from './completions/resumable-streams';
import { embedInput, type EmbedArguments, type Embeddings } from './embeddings/embeddings';
import { gpuError } from './gpu-tier/gpu-errors';
import type { GpuTier } from './gpu-tier/gpu-tier';
import type { ModelCatalog, ModelInfo } from './models/model-catalog';

export interface InferenceContext extends SubgraphContext {
  catalog: ModelCatalog;
  embeddings: Embeddings;
  completions: Completions;
  idempotentCompletions: IdempotentCompletions;
  resumableStreams: ResumableStreams;
  tier: GpuTier;
}

const catalogCall = <T>(call: Promise<T>): Promise<T> =>
  call.catch((error: unknown) => {
    throw gpuError(error);
  });

export const resolvers: GraphQLResolverMap<InferenceContext> = {
  Query: {
    models: (_: unknown, __: unknown, { catalog }: InferenceContext) => catalogCall(catalog.list()),
    model: async (_: unknown, { id }: { id: string }, { catalog }: InferenceContext) => (await catalogCall(catalog.get(id))) ?? null,
    embed: (_: unknown, { model, ...args }: EmbedArguments & { model?: string | null }, { identity, identityHeader, embeddings }: InferenceContext) => {
      const input = embedInput(args);
      return 'texts' in input ? embeddings.embed({ identity, identityHeader }, input.texts, model) : embeddings.embedTokens({ identity, identityHeader }, input.tokens, model);
    },
  },
  Mutation: {
    complete: (_: unknown, { input, idempotencyKey }: { input: CompletionInput; idempotencyKey?: string | null }, { identity, identityHeader, idempotentCompletions }: InferenceContext) =>
      idempotentCompletions.complete({ identity, identityHeader }, input, idempotencyKey),
  },
  Subscription: {
    completionStream: {
      subscribe: (
        _: unknown,
        { input, streamKey, resumeAt }: { input: CompletionInput; streamKey?: string | null; resumeAt?: number | null },
        { identity, identityHeader, resumableStreams }: InferenceContext,
      ) => resumableStreams.stream({ identity, identityHeader }, input, streamKey, resumeAt),
      resolve: (chunk: CompletionChunk) => chunk,
    },
  },
  Model: {
    __resolveReference: async (ref: { id: string }, { catalog }: InferenceContext) => (await catalogCall(catalog.get(ref.id))) ?? null,
    reason: (model: ModelInfo) => model.reason || null,
    endpoints: (model: ModelInfo, _: unknown, { tier }: InferenceContext) => tier.endpointsOf(model.id),
  },
};
