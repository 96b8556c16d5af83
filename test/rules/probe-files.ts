import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** The repository root: the rule checkers run from here with the root configs, as `npm run lint` does. */
export const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Temporary source files written into the real tree, so the root configs judge them exactly as they judge the code.
 * Every path carries one unique marker (never a name someone else uses), and `remove` deletes each file or folder
 * it created, so a run never leaves anything behind for another engineer to commit by accident.
 */
export class ProbeFiles {
  /** Unique per run; put it in every path so probes cannot clash with real files or another run's probes. */
  readonly marker = `rules-probe-${process.pid}-${randomBytes(3).toString('hex')}`;
  /** Marked files and folders, removed whole. */
  private readonly marked = new Set<string>();
  /** Unmarked folders that had to be created above a marked part, removed only if nothing else was put in them. */
  private readonly parents: string[] = [];

  /** Writes `text` at `relativePath` (which must contain the marker), creating the marked folder if needed. */
  write(relativePath: string, text: string): string {
    const parts = relativePath.split('/');
    const markedPart = parts.findIndex((part) => part.includes(this.marker));
    if (markedPart < 0) throw new Error(`Probe path "${relativePath}" has no part containing the marker "${this.marker}"; expected one so that it can be removed safely`);
    const unmarkedParent = path.join(ROOT, ...parts.slice(0, markedPart));
    const firstCreated = mkdirSync(unmarkedParent, { recursive: true });
    if (firstCreated) this.parents.push(...ancestorsFrom(firstCreated, unmarkedParent));
    const file = path.join(ROOT, relativePath);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
    this.marked.add(path.join(ROOT, ...parts.slice(0, markedPart + 1)));
    return relativePath;
  }

  remove(): void {
    for (const marked of this.marked) rmSync(marked, { recursive: true, force: true });
    this.marked.clear();
    for (const parent of this.parents.splice(0).reverse()) {
      if (readdirSync(parent).length === 0) rmdirSync(parent);
    }
  }
}

/** `top` and each folder below it down to `bottom`, top first (what one recursive mkdir created). */
function ancestorsFrom(top: string, bottom: string): string[] {
  const chain: string[] = [];
  for (let dir = bottom; dir.startsWith(top); dir = path.dirname(dir)) chain.unshift(dir);
  return chain;
}

export interface ToolRun {
  status: number | null;
  /** stdout and stderr together: the tools print their verdicts on either. */
  output: string;
}

/** Runs a tool installed in node_modules/.bin from the repository root. */
export function runTool(tool: 'biome' | 'depcruise', args: string[]): ToolRun {
  const run = spawnSync(path.join(ROOT, 'node_modules', '.bin', tool), args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
