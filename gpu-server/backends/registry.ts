/** The built-in backends by name (what `parameters.sluice_backend` may say). */
import type { RunnerFactory } from '../core/runner';
import { CAUSAL_LM_RUNNER, createCausalLmRunner } from './causal-lm/runner';
import { createTextEmbeddingRunner, TEXT_EMBEDDING_RUNNER } from './text-embedding';

export const BUILTIN_BACKENDS: Record<string, RunnerFactory> = {
  [TEXT_EMBEDDING_RUNNER]: createTextEmbeddingRunner,
  [CAUSAL_LM_RUNNER]: createCausalLmRunner,
};
