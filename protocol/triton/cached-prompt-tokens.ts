/**
 * How many of a request's prompt tokens the server took from its prefix
 * cache instead of computing them (int64 response parameter). The Sluice
 * gpu-server's causal-lm backend sets it on every response that carries
 * `num_input_tokens`; for a request of several rows (a batch sent through
 * ModelInfer) it is the rows' total and CACHED_PROMPT_TOKENS_ROWS_PARAMETER
 * (string) gives each row's count, comma-separated in row order. NVIDIA's
 * Triton and its vLLM backend report neither: a client then counts every
 * prompt token as computed (a cache miss).
 */
export const CACHED_PROMPT_TOKENS_PARAMETER = 'sluice_cached_prompt_tokens';
export const CACHED_PROMPT_TOKENS_ROWS_PARAMETER = 'sluice_cached_prompt_tokens_rows';
