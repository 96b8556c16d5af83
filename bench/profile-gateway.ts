/**
 * Issue 19: where Sluice's gateway spends its CPU on the public
 * gateways-benchmark workload (bench/support/federation-benchmark-subgraphs.ts,
 * the ≈ 87 KB answer), the figure bench/gateway-throughput.ts reports as
 * "gateway CPU per request". One gateway process (1 worker, every feature on
 * as in that benchmark's foreign-graph rows) runs under V8's sampling
 * profiler (`--cpu-prof`) while 50 keep-alive connections send the query;
 * only the samples taken inside the measured window count (not start-up, not
 * the warm-up, not the drain). The self time of each sample is attributed to
 * the function it was in, and grouped by where that function lives
 * (gpu-server/testing/load-profile.ts's `placeOf`, as bench/server-overhead.ts
 * groups its profile): a package under node_modules, a directory of ours, a
 * Node module, or a native or V8 frame by name (garbage collection,
 * compiled-code stubs as "(program)").
 *
 *   npx tsx bench/profile-gateway.ts [--dedup on|off, default on] [seconds, default 8]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { startSecondGateway } from './rate-limit-load';
import { loadNote, recordResult } from './results';
import { benchStack } from './stack';
import { EVERY_FEATURE_FOREIGN } from './support/every-feature';
import { attribute, busyUs, monotonicUs, readCpuProfiles, selfTimeTables, share } from './support/profile-window';
import { BENCHMARK_QUERY, startBenchmarkSubgraphs } from './support/federation-benchmark-subgraphs';

const dedupFlag = process.argv.indexOf('--dedup');
const dedup = dedupFlag >= 0 ? process.argv[dedupFlag + 1] : 'on';
if (dedup !== 'on' && dedup !== 'off') throw new Error(`--dedup expects on or off, but got ${dedup}`);
const positional = process.argv.slice(2).filter((_, i) => dedupFlag < 0 || (i !== dedupFlag - 2 && i !== dedupFlag - 1));
const SECONDS = Number(positional[0] ?? 8);
if (!(SECONDS >= 1)) throw new Error(`seconds expects a number of at least 1, but got ${positional[0]}`);
const WARMUP_SECONDS = 3;
const CONNECTIONS = 50;

async function hammer(url: string, body: string, expected: string, seconds: number): Promise<{ requests: number; failures: number }> {
  const result = await autocannon({ url, method: 'POST', headers: { 'content-type': 'application/json' }, body, expectBody: expected, connections: CONNECTIONS, duration: seconds });
  return { requests: result.requests.total, failures: result.errors + result.timeouts + result.non2xx + result.mismatches };
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const profileDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-gateway-profile-'));
  // Redis and the signing secrets come from a stack of ours; the graph served is the benchmark's.
  const { stack } = await benchStack({ GATEWAY_RESPONSE_CACHE: 'false' });
  const subgraphs = await startBenchmarkSubgraphs();
  try {
    const env = { ...EVERY_FEATURE_FOREIGN, GATEWAY_DEDUP: dedup === 'on' ? 'true' : 'false', GATEWAY_WORKERS: '1', GATEWAY_SUPERGRAPH_FILE: subgraphs.supergraphFile };
    const gateway = await startSecondGateway(stack, env, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`]);
    const body = JSON.stringify({ query: BENCHMARK_QUERY });
    const first = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const expected = await first.text();
    if (first.status !== 200 || JSON.parse(expected).errors) throw new Error(`expected 200 with no errors from the gateway, got ${first.status}: ${expected.slice(0, 500)}`);
    await hammer(gateway.url, body, expected, WARMUP_SECONDS);
    const from = monotonicUs();
    const run = await hammer(gateway.url, body, expected, SECONDS);
    const to = monotonicUs();
    await gateway.stop();
    if (run.failures > 0) process.exitCode = 1;

    const [{ profile }] = readCpuProfiles(profileDir, 'the gateway');
    const seen = attribute(profile, [[from, to]]);
    const perRequestUs = busyUs(seen, to - from) / run.requests;
    const report = [
      `One Sluice gateway process (1 worker, every feature on as in section 9b, dedup ${dedup}) serving the public gateways-benchmark query (≈ 87 KB answers) to ${CONNECTIONS} keep-alive connections, profiled with V8's sampling profiler (\`--cpu-prof\`); only the ${SECONDS} s measured after a ${WARMUP_SECONDS} s warm-up count (\`npx tsx bench/profile-gateway.ts --dedup ${dedup} ${SECONDS}\`). ${run.requests} requests (${(run.requests / ((to - from) / 1e6)).toFixed(0)}/s under the profiler), ${run.failures} failed. The main thread was busy in ${share(seen.busy, seen.samples)} of ${seen.samples} samples: about ${perRequestUs.toFixed(0)} µs per request on it (the process's other threads — V8's concurrent GC and compiler, libuv — are not in a CPU profile, so /proc's figure in 9b is higher).`,
      '',
      ...selfTimeTables(seen, { places: 15, functions: 25, callers: 8 }),
      '',
      `${loadNote(loadBefore)}.`,
    ].join('\n');
    console.log(report);
    recordResult(`gateway-profile-federation-dedup-${dedup}`, `9c Where the gateway's CPU goes on the gateways-benchmark workload (dedup ${dedup})`, report);
  } finally {
    await subgraphs.stop();
    await stack.stop();
    rmSync(profileDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
