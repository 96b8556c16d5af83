/**
 * How many of a request's prompt tokens the server took from its prefix
 * cache instead of computing them (int64 response parameter). The Sluice
 * gpu-server's causal-lm backend sets it on every response that carries
 * `num_input_tokens`; NVIDIA's Triton and its vLLM backend do not report it,
 * and a client then counts every prompt token as computed (a cache miss).
 */
export const CACHED_PROMPT_TOKENS_PARAMETER = 'cached_prompt_tokens';
