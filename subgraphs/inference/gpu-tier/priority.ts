/**
 * Callers' request priority on the GPU tier: Triton's `priority` request
 * parameter, which our gpu-server's dynamic batcher honours (and NVIDIA's
 * Triton too) for models with `dynamic_batching { priority_levels: N }`:
 * level 1 is served first, higher numbers later; 0 or a number beyond the
 * model's levels means the model's `default_priority_level`.
 *
 * There are no plans yet, so the caller's signed scopes decide:
 * `INFERENCE_PRIORITY_BY_SCOPE`, e.g. "admin=1,inference:priority=1,default=3",
 * maps a scope to a level; a caller holding several mapped scopes gets the
 * best (lowest) level; `default` applies to a caller holding none. Without a
 * mapping for the caller no parameter is sent, so the model's default level
 * applies — the same as before priorities existed. When plans exist, a plan
 * becomes a scope the gateway signs (e.g. `plan:pro`) and this table maps it.
 */
import type { Identity } from '../../../lib/identity';

export type PriorityByScope = ReadonlyMap<string, number>;

const DEFAULT_KEY = 'default';

/** Parses "scope=level,…" (levels are integers ≥ 1); throws naming the entry that is wrong. */
export function parsePriorityByScope(text: string): PriorityByScope {
  const table = new Map<string, number>();
  for (const entry of text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const match = /^([^=\s]+)\s*=\s*(\d+)$/.exec(entry);
    const level = match ? Number(match[2]) : NaN;
    if (!match || !Number.isSafeInteger(level) || level < 1) {
      throw new TypeError(`INFERENCE_PRIORITY_BY_SCOPE expects "scope=level" entries with levels from 1 (served first), but got ${JSON.stringify(entry)}`);
    }
    table.set(match[1], level);
  }
  return table;
}

/** The caller's priority level, or undefined to send none (the model's default level). */
export function priorityFor(identity: Pick<Identity, 'scopes'>, table: PriorityByScope): number | undefined {
  let best: number | undefined;
  for (const scope of identity.scopes) {
    const level = table.get(scope);
    if (level !== undefined && (best === undefined || level < best)) best = level;
  }
  return best ?? table.get(DEFAULT_KEY);
}
