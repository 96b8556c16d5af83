/**
 * The part of a V8 CPU profile (`node --cpu-prof`) taken inside a benchmark's
 * measured windows, attributed by self time: to the function each sample was
 * in, grouped by where it lives (gpu-server/testing/load-profile.ts's
 * `placeOf`), with each function's callers. The window is given in µs of the
 * machine's monotonic clock (`monotonicUs`), which is the clock V8 stamps its
 * samples with on Linux: a benchmark reads it once in its own process and
 * applies it to the profiles of every process it ran.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
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

/** The samples of `profile` taken inside any of `windows`. */
export function attribute(profile: CpuProfile, windows: readonly Window[]): Attribution {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, ProfileNode>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node);
  const result: Attribution = { samples: 0, busy: 0, byPlace: new Map(), byFunction: new Map(), callers: new Map() };
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

/** `more`'s samples added into `into` (several processes summed); returns `into`. */
export function addAttribution(into: Attribution, more: Attribution): Attribution {
  const addAll = (to: Map<string, number>, from: Map<string, number>) => {
    for (const [key, n] of from) to.set(key, (to.get(key) ?? 0) + n);
  };
  into.samples += more.samples;
  into.busy += more.busy;
  addAll(into.byPlace, more.byPlace);
  addAll(into.byFunction, more.byFunction);
  for (const [name, chains] of more.callers) {
    if (!into.callers.has(name)) into.callers.set(name, new Map());
    addAll(into.callers.get(name) as Map<string, number>, chains);
  }
  return into;
}

/** µs a thread ran over windows `spanUs` long in all: its busy share of the samples in them, times their length. */
export function busyUs(seen: Attribution, spanUs: number): number {
  return seen.samples > 0 ? (seen.busy / seen.samples) * spanUs : 0;
}

/** Every .cpuprofile in `dir` (written by processes as they exited), with its file name; `who` names the writers for the error when there is none. */
export function readCpuProfiles(dir: string, who: string): Array<{ file: string; profile: CpuProfile }> {
  const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`expected ${who} to write a .cpuprofile into ${dir} as it exited, but found none`);
  return files.map((file) => ({ file, profile: JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as CpuProfile }));
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
