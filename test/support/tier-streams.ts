/**
 * Streamed generations started straight on a GpuTier, for the end-to-end
 * tests that change the tier under load (an endpoint killed, a DNS answer
 * changed) and then check where each stream ran and how it ended.
 */
import { generationOutputs, generationRequest } from '../../subgraphs/inference/completions/generation-tensors';
import type { GpuTier } from '../../subgraphs/inference/gpu-tier/gpu-tier';
import type { StreamError } from '../../subgraphs/inference/gpu-tier/shared-stream';
import type { ModelInfo } from '../../subgraphs/inference/models/model-catalog';

export interface StreamOutcome {
  /** Where the stream ran (the endpoint it ended on). */
  endpoint: string;
  responses: number;
  error?: StreamError;
  /** It ended with the model's final response. */
  final: boolean;
}

export interface TierStream {
  outcome: Promise<StreamOutcome>;
  /** Where it is and how far it got, now. */
  live: () => { endpoint: string; responses: number; done: boolean };
}

/** Starts stream number `i` (its seed) asking for a story of up to `maxTokens`, checking every response's tensors. */
export function runStream(tier: GpuTier, model: ModelInfo, i: number, maxTokens: number): TierStream {
  let responses = 0;
  let done = false;
  let resolve!: (o: StreamOutcome) => void;
  const outcome = new Promise<StreamOutcome>((r) => (resolve = r));
  const handle = tier.startStream(
    generationRequest(model, `e2e-${i}-${Date.now()}`, [`<|user|>\nTell me a long story number ${i}\n<|assistant|>\n`], [{ max_tokens: maxTokens, temperature: 0.9, top_p: 1, seed: i }], true),
    {
      response: (response, final) => {
        generationOutputs(model, response, 1);
        responses++;
        if (final) {
          done = true;
          resolve({ endpoint: handle.endpoint.address, responses, final: true });
        }
      },
      error: (error) => {
        done = true;
        resolve({ endpoint: handle.endpoint.address, responses, error, final: false });
      },
    },
  );
  return { outcome, live: () => ({ endpoint: handle.endpoint.address, responses, done }) };
}
