/**
 * Writes one benchmark's figures into bench/RESULTS.md, replacing that
 * benchmark's previous section (between its markers) and keeping the others,
 * so every script can be re-run on its own. Each section records the machine
 * and the date it was measured on.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const RESULTS = path.join(__dirname, 'RESULTS.md');
const HEADER = `# Benchmark results\n\nEach section is written by its script (\`npx tsx bench/<script>.ts\`, or \`npm run bench\` for all); figures are measured side by side in one run on the machine named.\n`;

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

/** Replaces section `id` of bench/RESULTS.md with `title` and `body` (Markdown). */
export function recordResult(id: string, title: string, body: string): void {
  const start = `<!-- bench:${id} -->`;
  const end = `<!-- /bench:${id} -->`;
  const section = `${start}\n## ${title}\n\n_Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}._\n\n${body.trim()}\n${end}`;
  const current = fs.existsSync(RESULTS) ? fs.readFileSync(RESULTS, 'utf8') : HEADER;
  const from = current.indexOf(start);
  const to = current.indexOf(end);
  const next = from >= 0 && to > from ? current.slice(0, from) + section + current.slice(to + end.length) : `${current.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(RESULTS, next);
}

/** The p-th percentile (0–100) of `values` (nearest rank). */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The machine's 1-minute load average at a benchmark's start and now, for judging how much else was running. */
export function loadNote(atStart: number): string {
  return `Load average (1 min) of the machine: ${atStart.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end (2 cores: above about 1, other processes were competing with the benchmark)`;
}
