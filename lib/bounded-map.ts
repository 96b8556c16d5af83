/**
 * Adds `value` under `key` to an insertion-ordered map that holds at most
 * `limit` entries, dropping the oldest: a memo that a stream of distinct keys
 * (callers, forged headers) cannot grow without bound.
 */
export function remember<V>(map: Map<string, V>, key: string, value: V, limit: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > limit) map.delete(map.keys().next().value!);
}
