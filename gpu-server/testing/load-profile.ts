/**
 * CPU profiles of a benchmark's load: V8's sampling profiler (what
 * `node --cpu-prof` runs), started and stopped through node:inspector around
 * the measured loop only, so start-up and warm-up stay out of it. The profile
 * is written as a .cpuprofile (open it in Chrome DevTools or speedscope) and
 * summarised as the packages and functions that took the most self time.
 */
import * as fs from 'node:fs';
import { Session } from 'node:inspector/promises';
import * as path from 'node:path';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** When the profiler started and stopped, in µs of the process's monotonic clock. */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
/** V8's pseudo-frames: time not spent in a JS or native function. */
export const IDLE = '(idle)';

/** Runs `work` under the sampling profiler (one sample per `intervalUs`), writes the profile to `file`. */
export async function profileCpu<T>(file: string, work: () => Promise<T>, intervalUs = 100): Promise<{ result: T; profile: CpuProfile }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
    await session.post('Profiler.start');
    const result = await work();
    const { profile } = await session.post('Profiler.stop');
    fs.writeFileSync(file, JSON.stringify(profile));
    return { result, profile: profile as CpuProfile };
  } finally {
    session.disconnect();
  }
}

/** Where a frame's code lives: an npm package, a Node module, a project directory, or a native/V8 frame by name. */
export function placeOf({ url, functionName }: ProfileNode['callFrame']): string {
  if (!url) return functionName || '(native)';
  const packageMatch = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (packageMatch) return packageMatch[1];
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?([^/]+).*$/, 'node:$2');
  const file = url.replace(/^file:\/\//, '');
  return path.relative(PROJECT_ROOT, file).split(path.sep).slice(0, 2).join('/');
}

export function frameName(frame: ProfileNode['callFrame']): string {
  const file = frame.url ? ` ${path.basename(frame.url)}${frame.url.includes('node_modules') ? `:${frame.lineNumber + 1}` : ''}` : '';
  return `${frame.functionName || '(anonymous)'}${file}`;
}

/** Nodes under a call into node:inspector: the profiler stopping and serialising itself, not the work measured. */
function profilerNodes(profile: CpuProfile): Set<number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const own = new Set<number>();
  const mark = (node: ProfileNode) => {
    own.add(node.id);
    for (const child of node.children ?? []) mark(byId.get(child)!);
  };
  for (const node of profile.nodes) if (node.callFrame.url === 'node:inspector' && !own.has(node.id)) mark(node);
  return own;
}

/**
 * The `top` packages and functions by self time, as Markdown lists, in
 * percent of the busy (non-idle) time, with the idle share said first.
 */
export function summarizeProfile(profile: CpuProfile, top = 15): string {
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const profiler = profilerNodes(profile);
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  for (const node of profile.nodes) {
    if (profiler.has(node.id)) continue;
    const us = selfUs.get(node.id) ?? 0;
    if (node.callFrame.functionName === IDLE) {
      idle += us;
      continue;
    }
    busy += us;
    const place = placeOf(node.callFrame);
    byPlace.set(place, (byPlace.get(place) ?? 0) + us);
    const name = frameName(node.callFrame);
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  }
  const list = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => `- ${((us / busy) * 100).toFixed(1)} % ${name}`)
      .join('\n');
  return [
    `Main thread busy ${((busy / (busy + idle)) * 100).toFixed(0)} % of the profiled time; shares below are of the busy time.`,
    '',
    'Self time by package or directory:',
    '',
    list(byPlace),
    '',
    'Self time by function:',
    '',
    list(byFunction),
  ].join('\n');
}
