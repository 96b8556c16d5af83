import type { Env } from '../../lib/config';

/** The OpenAI-compatible door on `/v1`. */
export interface OpenAiOptions {
  /** Interval of the `: keep-alive` comments on an idle stream, in ms, so proxies and clients do not time it out (GATEWAY_OPENAI_KEEPALIVE_MS). @default 15000 */
  keepAliveMs: number;
}

/** The door's options, or undefined when GATEWAY_OPENAI is off (it is on by default). */
export function openAiFromEnv(env: Env): OpenAiOptions | undefined {
  if (!env.bool('GATEWAY_OPENAI', true)) return undefined;
  return { keepAliveMs: env.int('GATEWAY_OPENAI_KEEPALIVE_MS', 15_000, { min: 100 }) };
}
