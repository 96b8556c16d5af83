import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * A cluster of two workers, as gateway/workers.ts runs it: each worker counts
 * on its own, and a scrape answered by either one reports both.
 */
const FIXTURE = `
import cluster from 'node:cluster';
import { aggregateWorkerMetrics, clusterMetricsText, joinClusterMetrics } from ${JSON.stringify(path.join(ROOT, 'gateway/metrics/cluster-metrics'))};
import { GatewayMetrics } from ${JSON.stringify(path.join(ROOT, 'gateway/metrics/gateway-metrics'))};

if (cluster.isPrimary) {
  aggregateWorkerMetrics();
  const workers = [cluster.fork(), cluster.fork()];
  let ready = 0;
  cluster.on('message', (_worker, message) => {
    if (message === 'ready' && ++ready === workers.length) workers[1].send('scrape');
  });
  cluster.on('exit', (_worker, code) => {
    for (const worker of workers) worker.kill();
    process.exitCode = code ?? 1;
  });
} else {
  const metrics = new GatewayMetrics();
  joinClusterMetrics(metrics);
  metrics.recordRateLimitRefusal('user', 'rpm');
  metrics.recordOperation('Greeting', 'query', 'ok', 0.002);
  metrics.subscriptionStarted();
  process.on('message', async (message) => {
    if (message !== 'scrape') return;
    process.stdout.write(JSON.stringify(await clusterMetricsText(metrics)) + '\\n');
    process.exit(0);
  });
  process.send!('ready');
}
`;

it('reports the sum over every worker from whichever worker is scraped', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-metrics-cluster-'));
  try {
    const file = path.join(dir, 'cluster.ts');
    writeFileSync(file, FIXTURE);
    const run = spawnSync(path.join(ROOT, 'node_modules/.bin/tsx'), [file], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    const text = JSON.parse(run.stdout.trim().split('\n')[0]) as string;
    expect(text).toMatch(/^sluice_gateway_rate_limited_total\{scope="user",limit="rpm"\} 2$/m);
    expect(text).toMatch(/^sluice_gateway_operation_duration_seconds_count\{operation="Greeting",type="query",outcome="ok"\} 2$/m);
    expect(text).toMatch(/^sluice_gateway_live_subscriptions 2$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
