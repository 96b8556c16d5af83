/**
 * The routing rule, apart from the endpoints' bookkeeping so it can be tested
 * on its own: among the endpoints that can serve a model, the least
 * outstanding one (fewest requests of ours in flight plus its mean queue for
 * that model, see gpu-endpoint.ts), ties going to the next endpoint in
 * rotation.
 *
 * Why least-outstanding rather than power-of-two-choices: this process
 * counts its own in-flight requests exactly, so the minimum is always the
 * right pick for it; two random choices exist to avoid herding when the load
 * signal is stale or shared by many routers, and here the stale part (the
 * server's queue) is only added to the exact part. The rotation makes an idle
 * tier round-robin, so sequential requests spread too.
 */
import type { ErrorCode } from '../../../lib/errors';

/** Index of the least-loaded candidate, scanning from `start` so that ties rotate; -1 when there is none. */
export function leastLoaded<T>(candidates: readonly T[], load: (candidate: T) => number, start: number): number {
  const n = candidates.length;
  let best = -1;
  let bestLoad = Infinity;
  for (let i = 0; i < n; i++) {
    const index = (start + i) % n;
    const l = load(candidates[index]);
    if (l < bestLoad) {
      best = index;
      bestLoad = l;
    }
  }
  return best;
}

/**
 * Index of `preferred` (the candidate that served the same conversation
 * before, prefix-affinity.ts) when its load exceeds the least-loaded
 * candidate's by at most `margin`, else `leastLoaded`'s pick; -1 when there
 * is no candidate.
 */
export function withAffinity<T>(candidates: readonly T[], load: (candidate: T) => number, start: number, preferred: T | undefined, margin: number): number {
  const least = leastLoaded(candidates, load, start);
  const index = preferred === undefined ? -1 : candidates.indexOf(preferred);
  if (index < 0 || least < 0) return least;
  return load(preferred!) - load(candidates[least]) <= margin ? index : least;
}

/**
 * No endpoint can take a call for a model. `code` says why, as the client
 * will see it: MODEL_NOT_FOUND (no endpoint lists the model), MODEL_NOT_READY
 * (listed, but ready on no endpoint that is up; `retryAfter` seconds is when
 * the state will have been checked again), GPU_UNAVAILABLE (no endpoint
 * answers, so where the model is served is unknown).
 */
export class NoEndpointError extends Error {
  override name = 'NoEndpointError';
  constructor(
    message: string,
    readonly code: ErrorCode.ModelNotFound | ErrorCode.ModelNotReady | ErrorCode.GpuUnavailable,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}
