/**
 * `npm run bench`: every benchmark, one after another (each needs the
 * machine to itself), each rewriting its own section of bench/RESULTS.md.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

/** Each script with its arguments, when a section needs some. */
const SCRIPTS: Array<string | string[]> = [
  'dynamic-batching.ts',
  'instances.ts',
  'generation-concurrency.ts',
  'server-overhead.ts',
  'completions-batching.ts',
  'subscription-throughput.ts',
  'knowledge-ingestion.ts',
  'vector-search.ts',
  'billing-settlement.ts',
  'billing-reservation.ts',
  'gpu-router.ts',
  'completion-cache.ts',
  'response-cache.ts',
  'rate-limit-load.ts',
  'plan-executor.ts',
  'gateway-throughput.ts',
  ['profile-gateway.ts', '--dedup', 'on'],
  ['profile-gateway.ts', '--dedup', 'off'],
  'scale-out.ts',
  'openai-api.ts',
  'profile-streams.ts',
  'prefix-cache.ts',
  'prefix-affinity.ts',
  'perimeter-cost.ts',
  'chaos.ts',
  'web-app.ts',
];

let failed = 0;
for (const entry of SCRIPTS) {
  const [script, ...args] = typeof entry === 'string' ? [entry] : entry;
  process.stdout.write(`\n=== bench/${[script, ...args].join(' ')}\n`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, script), ...args], { stdio: 'inherit' });
  if (run.status !== 0) {
    failed++;
    process.stderr.write(`bench/${script} failed (exit ${run.status ?? run.signal})\n`);
  }
}
process.exit(failed ? 1 : 0);
