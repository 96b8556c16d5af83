/**
 * The part of a V8 CPU profile (`node --cpu-prof`) taken inside a benchmark's
 * measured windows, attributed by self time: to the function each sample was
 * in, grouped by where it lives (gpu-server/testing/load-profile.ts's
 * `placeOf`), with each function's callers. The window is given in µs of the
 * machine's monotonic clock (`monotonicUs`), which is the clock V8 stamps its
 * samples with on Linux: a benchmark reads it once in its own process and
 * applies it to the profiles of every process it ran.
 */
import { type CpuProfile, frameName, IDLE, placeOf, type ProfileNode } from '../../gpu-server/testing/load-profile';

export interface Attribution {
  /** Samples in the window, and those of them not idle. */
  samples: number;
  busy: number;
  byPlace: Map<string, number>;
  byFunction: Map<string, number>;
  /** For each function, the samples in it by the chain of callers above it (up to CALLER_DEPTH), outside V8's and Node's own frames. */
  callers: Map<string, Map<string, number>>;
}

const CALLER_DEPTH = 4;

/** Now, in µs of CLOCK_MONOTONIC, as V8's profiler stamps samples. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** A measured stretch, from and to in monotonicUs. */
export type Window = readonly [number, number];

/** The samples of `profile` taken inside any of `windows`, added to `into` (to sum several processes). */
export function attribute(profile: CpuProfile, windows: readonly Window[], into?: Attribution): Attribution {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node);
  const result: Attribution = into ?? { samples: 0, busy: 0, byPlace: new Map(), byFunction: new Map(), callers: new Map() };
  const add = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    if (!windows.some(([from, to]) => at >= from && at <= to)) continue;
    result.samples++;
    const node = nodes.get(profile.samples[i]) as ProfileNode;
    if (node.callFrame.functionName === IDLE) continue;
    result.busy++;
    add(result.byPlace, placeOf(node.callFrame));
    const key = frameName(node.callFrame);
    add(result.byFunction, key);
    const chain: string[] = [];
    for (let parent = parents.get(node.id); parent && chain.length < CALLER_DEPTH; parent = parents.get(parent.id)) {
      if (parent.callFrame.url && !parent.callFrame.url.startsWith('node:')) chain.push(frameName(parent.callFrame));
    }
    if (!result.callers.has(key)) result.callers.set(key, new Map());
    add(result.callers.get(key) as Map<string, number>, chain.join(' ← ') || '(no caller of ours)');
  }
  return result;
}

export const share = (n: number, of: number) => `${((100 * n) / of).toFixed(1)} %`;
const top = (map: Map<string, number>, count: number) => [...map].sort((a, b) => b[1] - a[1]).slice(0, count);

/** Markdown: the places and functions with the most self time, and the callers of the first `callers` functions. */
export function selfTimeTables(seen: Attribution, shown: { places: number; functions: number; callers: number }): string[] {
  return [
    'Self time of the busy samples, by where the function lives:',
    '',
    '| where | share |',
    '|---|---|',
    ...top(seen.byPlace, shown.places).map(([place, n]) => `| ${place} | ${share(n, seen.busy)} |`),
    '',
    'The functions with the most self time:',
    '',
    '| function | share |',
    '|---|---|',
    ...top(seen.byFunction, shown.functions).map(([name, n]) => `| \`${name}\` | ${share(n, seen.busy)} |`),
    '',
    `Who calls the top ${shown.callers} (the callers outside V8's and Node's own frames, nearest first, up to ${CALLER_DEPTH}):`,
    '',
    ...top(seen.byFunction, shown.callers).flatMap(([name, n]) => [
      `- \`${name}\`:`,
      ...top(seen.callers.get(name) as Map<string, number>, 3).map(([chain, m]) => `  - ${share(m, n)} from \`${chain}\``),
    ]),
  ];
}
