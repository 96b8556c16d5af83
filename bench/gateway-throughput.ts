/**
 * Issue 7, item 9 and issue 19: Sluice's gateway against Hive Gateway (the
 * fastest JavaScript federation gateway we compare with) and stock
 * `@apollo/gateway` + `@apollo/server`, side by side in one run over the same
 * subgraphs (one `benchStack`), the same query and the same signed-in user.
 *
 * 1. Throughput: a deeply nested query spanning all four subgraphs (seven
 *    fetches, three dependent steps: auth → knowledge → auth and billing for
 *    the documents' owners; inference → billing) under 50 concurrent
 *    keep-alive connections (autocannon), rounds alternating between the
 *    gateways. Sluice runs with every feature on (EVERY_FEATURE: a signed-in
 *    caller, limits configured and passing, APQ, the response cache, metrics,
 *    dedup), with 2 workers and 1, and the same with dedup off; Hive Gateway
 *    with its public benchmark settings and with neither
 *    (bench/support/hive-gateway.ts); the stock gateway with its defaults.
 *    The CPU time each part of the machine spends per request is read from
 *    /proc. Every response is checked: each gateway's first answer must hold
 *    the stock gateway's data and no errors, and autocannon's expectBody
 *    holds every later one to that gateway's first answer.
 * 2. Overhead: `{ models { id } }` (public, inference only), one connection,
 *    one request at a time, through the gateway (response cache off, else it
 *    is a hit) vs straight to the inference subgraph with a signed identity
 *    header; p50 of each and the difference.
 *
 * 3. The public workload (`--workload federation`): the same rows on the
 *    graph of the public GraphQL gateways benchmark
 *    (bench/support/federation-benchmark-subgraphs.ts: four subgraphs of our
 *    own, each in its own process, one deep query answering ≈ 87 KB), a
 *    foreign graph Sluice serves with `--supergraph`, to an anonymous caller.
 *
 *   npx tsx bench/gateway-throughput.ts [--workload sluice|federation, default both] [rounds, default 4] [seconds per run, default 3] [connections, default 50]
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import * as os from 'node:os';
import autocannon from 'autocannon';
import { IDENTITY_HEADER, IdentitySigner } from '../lib/identity';
import { identityAudience } from '../lib/service-calls';
import { SESSION_SCOPES } from '../subgraphs/auth/scopes';
import { bearer, gql } from '../test/support/graphql';
import { startSecondGateway } from './rate-limit-load';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';
import { type AnchorGraph, startStockGateway } from './stock-gateway';
import { EVERY_FEATURE, EVERY_FEATURE_FOREIGN } from './support/every-feature';
import { BENCHMARK_QUERY, startBenchmarkSubgraphs } from './support/federation-benchmark-subgraphs';
import { startHiveGateway } from './support/hive-gateway';
import { NESTED_QUERY } from './support/nested-query';

const WORKLOADS = ['sluice', 'federation'] as const;
type Workload = (typeof WORKLOADS)[number];
const workloadFlag = process.argv.indexOf('--workload');
const workloadArg = workloadFlag >= 0 ? process.argv[workloadFlag + 1] : undefined;
if (workloadArg !== undefined && !WORKLOADS.includes(workloadArg as Workload)) throw new Error(`--workload must be one of ${WORKLOADS.join(', ')}, got ${workloadArg}`);
const workloads: readonly Workload[] = workloadArg ? [workloadArg as Workload] : WORKLOADS;
const positional = workloadFlag >= 0 ? process.argv.slice(2).filter((_, i) => i !== workloadFlag - 2 && i !== workloadFlag - 1) : process.argv.slice(2);
const ROUNDS = Number(positional[0] ?? 4);
const SECONDS = Number(positional[1] ?? 3);
const CONNECTIONS = Number(positional[2] ?? 50);
const WARMUP_SECONDS = 2;
const OVERHEAD_ROUNDS = 5;
const OVERHEAD_PER_ROUND = 200;
const ALONE_REQUESTS = 100;

const OVERHEAD_QUERY = '{ models { id } }';

interface Target {
  label: string;
  url: string;
  headers: Record<string, string>;
  /** Counts which response-cache statuses it answered with (only the gateway with the cache on sends any). */
  cacheStatuses: Record<string, number>;
  /** Its /metrics, for the count of inbound operations answered by an identical one in flight; undefined for the stock gateway. */
  metricsUrl?: string;
  /** Its processes (primary and workers). */
  pids: number[];
  sharedOperations: number;
  runs: Run[];
}

interface Run {
  requests: number;
  seconds: number;
  latenciesMs: number[];
  failures: number;
  /** CPU time spent during the run by the gateway's processes, by the rest of the stack, and by the load generator. */
  cpuMs: { gateway: number; stack: number; loadGenerator: number };
  /** CPU time of the whole machine during the run, to tell how much went to processes outside this benchmark. */
  machineCpuMs: number;
}

/** The processes listening on a loopback `port` (for a cluster, the primary) and all their descendants (its workers). */
function processTree(port: number): number[] {
  const listing = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
  const roots = [...new Set([...listing.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])))];
  if (roots.length === 0) throw new Error(`expected a process listening on port ${port}, found none (ss: ${listing.trim() || 'empty'})`);
  const tree: number[] = [];
  const visit = (pid: number) => {
    tree.push(pid);
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const child of children ? children.split(' ') : []) visit(Number(child));
    }
  };
  roots.forEach(visit);
  return tree;
}

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** User + system CPU time of `pids` so far, in ms (processes that have exited count 0). */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name: state is field 3, utime 14 and stime 15.
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited
    }
  }
  return (ticks / TICKS_PER_SECOND) * 1000;
}

/** Busy CPU time of the whole machine so far, in ms (all cores; /proc/stat less idle and iowait). */
function machineCpuMs(): number {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return ((user + nice + system + irq + softirq + steal) / TICKS_PER_SECOND) * 1000;
}

const ownCpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

function headerValue(raw: unknown, name: string): string | undefined {
  // autocannon's 'headers' event passes http-parser-js's header info: a flat [name, value, name, value…] list.
  const list = (raw as { headers?: string[] }).headers ?? [];
  for (let i = 0; i + 1 < list.length; i += 2) if (list[i].toLowerCase() === name) return list[i + 1];
  return undefined;
}

async function dedupedOperations(metricsUrl: string | undefined): Promise<number | undefined> {
  if (!metricsUrl) return undefined;
  const text = await fetch(metricsUrl, { headers: { authorization: `Bearer ${process.env.SLUICE_METRICS_TOKEN}` } }).then(
    (r) => (r.ok ? r.text() : ''),
    () => '',
  );
  const line = text.split('\n').find((l) => l.startsWith('sluice_gateway_deduplicated_total{kind="operation"}'));
  return line ? Number(line.split(' ').pop()) : undefined;
}

/** `CONNECTIONS` keep-alive connections sending the nested query back to back for `seconds`; every answer must be `expected`. */
async function hammer(target: Target, stackPids: readonly number[], body: string, expected: string, seconds: number): Promise<Run> {
  const latenciesMs: number[] = [];
  const before = await dedupedOperations(target.metricsUrl);
  const cpuBefore = { gateway: cpuMs(target.pids), stack: cpuMs(stackPids), loadGenerator: ownCpuMs(), machine: machineCpuMs() };
  const result = await autocannon({
    url: target.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...target.headers },
    body,
    expectBody: expected,
    connections: CONNECTIONS,
    duration: seconds,
    setupClient: (client) => {
      client.on('response', (_status, _bytes, ms) => latenciesMs.push(ms));
      client.on('headers', (info) => {
        const status = headerValue(info, 'x-cache');
        if (status) target.cacheStatuses[status] = (target.cacheStatuses[status] ?? 0) + 1;
      });
    },
  });
  const cpu = { gateway: cpuMs(target.pids) - cpuBefore.gateway, stack: cpuMs(stackPids) - cpuBefore.stack, loadGenerator: ownCpuMs() - cpuBefore.loadGenerator };
  const machineCpu = machineCpuMs() - cpuBefore.machine;
  const after = await dedupedOperations(target.metricsUrl);
  if (before !== undefined && after !== undefined) target.sharedOperations += after - before;
  return {
    requests: result.requests.total,
    seconds: result.duration,
    latenciesMs,
    failures: result.errors + result.timeouts + result.non2xx + result.mismatches,
    cpuMs: cpu,
    machineCpuMs: machineCpu,
  };
}

/** One request at a time over one keep-alive connection; latency of each in ms. */
async function sequential(url: string, headers: Record<string, string>, body: string, count: number, agent: Agent): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
    latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (status !== 200) throw new Error(`expected 200 from ${url} for ${body}, got ${status}`);
  }
  return latencies;
}

/** The one answer every response of `target` must equal: 200, the data of `reference` (when given), no errors. */
async function referenceAnswer(target: Target, body: string, reference?: unknown): Promise<{ text: string; data: unknown; cacheControl: string | null }> {
  const response = await fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json', ...target.headers }, body });
  const text = await response.text();
  const parsed = JSON.parse(text) as { data?: unknown; errors?: unknown };
  if (response.status !== 200 || parsed.errors || !parsed.data) throw new Error(`${target.label}: expected 200 with data and no errors, got ${response.status}: ${text.slice(0, 500)}`);
  if (reference !== undefined && JSON.stringify(parsed.data) !== JSON.stringify(reference)) {
    throw new Error(`${target.label}: expected the same data as the first gateway, got ${JSON.stringify(parsed.data).slice(0, 500)}`);
  }
  return { text, data: parsed.data, cacheControl: response.headers.get('cache-control') };
}

/** Gives the signed-in user an API key and two documents, so that the query's lists are not empty; returns the user's id. */
async function setUpUser(url: string, token: string): Promise<string> {
  const auth = bearer(token);
  const me = await gql(url, '{ me { id } }', {}, auth);
  const key = await gql(url, 'mutation { createApiKey(name: "bench key", scopes: [BILLING_READ]) { apiKey { id } } }', {}, auth);
  const docs = await Promise.all(
    ['Gateway benchmarks', 'Federation notes'].map((title) =>
      gql(url, 'mutation($t: String!) { addDocument(title: $t, content: "A short document for the gateway benchmark.") { id } }', { t: title }, auth),
    ),
  );
  for (const res of [me, key, ...docs]) if (res.errors) throw new Error(`setting up the bench user failed: ${JSON.stringify(res.errors)}`);
  return me.data?.me.id as string;
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);

/** The seven rows of a workload: Sluice's four, both Hive Gateways and the stock gateway, each in its own process(es) on the same graph. */
interface Lineup {
  /** Every feature on, a worker per core. */
  allOn: Target;
  allOnOneWorker: Target;
  dedupOff: Target;
  dedupOffOneWorker: Target;
  hiveTuned: Target;
  hivePlain: Target;
  stock: Target;
  /** Sluice's four rows. */
  sluice: Target[];
  /** All seven, in the order each round runs them. */
  all: Target[];
}

/** Starts the lineup: Sluice with `features` (plus `sluiceEnv`, the graph it serves) and the anchors on `graph`; `stops` collects how to stop each. */
async function startLineup(
  stack: Awaited<ReturnType<typeof benchStack>>['stack'],
  features: Record<string, string>,
  sluiceEnv: Record<string, string>,
  sluiceHeaders: Record<string, string>,
  graph: AnchorGraph,
  stops: Array<() => Promise<void>>,
): Promise<Lineup> {
  const variants: Array<{ label: string; env: Record<string, string> }> = [
    { label: 'Sluice, every feature on', env: features },
    { label: 'Sluice, every feature on, 1 worker', env: { ...features, GATEWAY_WORKERS: '1' } },
    { label: 'Sluice, every feature on but dedup', env: { ...features, GATEWAY_DEDUP: 'false' } },
    { label: 'Sluice, every feature on but dedup, 1 worker', env: { ...features, GATEWAY_DEDUP: 'false', GATEWAY_WORKERS: '1' } },
  ];
  // Each is stopped at the end even when another fails to start.
  const track = <G extends { stop(): Promise<void> }>(gateway: G): G => {
    stops.push(() => gateway.stop());
    return gateway;
  };
  const [sluice, hiveTuned, hivePlain, stock] = await Promise.all([
    Promise.all(variants.map((v) => startSecondGateway(stack, { ...v.env, ...sluiceEnv }).then(track))),
    startHiveGateway(graph, true).then(track),
    startHiveGateway(graph, false).then(track),
    startStockGateway(graph).then(track),
  ]);
  const workers = os.availableParallelism();
  const anchor = (label: string, url: string): Target => ({ label, url, headers: {}, cacheStatuses: {}, sharedOperations: 0, pids: processTree(Number(new URL(url).port)), runs: [] });
  const sluiceTargets: Target[] = variants.map((v, i) => ({
    label: `${v.label}${v.env.GATEWAY_WORKERS ? '' : `, ${workers} workers`}`,
    url: sluice[i].url,
    headers: sluiceHeaders,
    cacheStatuses: {},
    metricsUrl: sluice[i].url.replace(/\/graphql$/, '/metrics'),
    sharedOperations: 0,
    pids: processTree(Number(new URL(sluice[i].url).port)),
    runs: [],
  }));
  const [allOn, allOnOneWorker, dedupOff, dedupOffOneWorker] = sluiceTargets;
  const lineup = {
    allOn,
    allOnOneWorker,
    dedupOff,
    dedupOffOneWorker,
    hiveTuned: anchor('Hive Gateway 2 (`--jit`, in-flight dedup inbound and outbound), 1 process', hiveTuned.url),
    hivePlain: anchor('Hive Gateway 2 (neither), 1 process', hivePlain.url),
    stock: anchor('stock @apollo/gateway + @apollo/server (defaults), 1 process', stock.url),
    sluice: sluiceTargets,
  };
  return { ...lineup, all: [...sluiceTargets, lineup.hiveTuned, lineup.hivePlain, lineup.stock] };
}

/**
 * Alternating rounds of `body` through every gateway of the lineup after a
 * warm-up. Every gateway's first answer must hold the stock gateway's data,
 * and every later answer must equal its first. Returns the stock gateway's
 * first answer.
 */
async function measureThroughput(lineup: Lineup, stackPids: readonly number[], body: string): Promise<{ text: string; cacheControl: string | null }> {
  const first = await referenceAnswer(lineup.stock, body);
  const expected = new Map<Target, string>();
  for (const target of lineup.all) expected.set(target, target === lineup.stock ? first.text : (await referenceAnswer(target, body, first.data)).text);
  // Warm-up: plans, JIT, connection pools; its response-cache statuses and dedup counts are not reported.
  for (const target of lineup.all) await hammer(target, stackPids, body, expected.get(target)!, WARMUP_SECONDS);
  for (const target of lineup.all) {
    target.cacheStatuses = {};
    target.sharedOperations = 0;
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of lineup.all) target.runs.push(await hammer(target, stackPids, body, expected.get(target)!, SECONDS));
  }
  return first;
}

const rate = (t: Target) =>
  percentile(
    t.runs.map((r) => r.requests / r.seconds),
    50,
  );
const latency = (t: Target, p: number) =>
  percentile(
    t.runs.flatMap((r) => r.latenciesMs),
    p,
  );
const total = (t: Target) => t.runs.reduce((n, r) => n + r.requests, 0);
/** CPU ms per request of one part, over all rounds. */
const cpuPerRequest = (t: Target, part: keyof Run['cpuMs']) => t.runs.reduce((n, r) => n + r.cpuMs[part], 0) / total(t);
const ratio = (a: Target, b: Target) => `${fmt(rate(a) / rate(b), 2)}×`;
const goal = (met: boolean) => (met ? 'met' : 'NOT met');

function throughputRows(lineup: Lineup): string[] {
  /** The anchor a Sluice row is compared with: Hive with its deduplication for the rows with dedup, without for the others. */
  const hiveFor = (t: Target) => (t === lineup.dedupOff || t === lineup.dedupOffOneWorker ? lineup.hivePlain : lineup.hiveTuned);
  return lineup.all.map((t) => {
    const failures = t.runs.reduce((n, r) => n + r.failures, 0);
    const cache = Object.keys(t.cacheStatuses).length
      ? Object.entries(t.cacheStatuses)
          .map(([s, n]) => `${s} ${fmt((n / total(t)) * 100, 1)} %`)
          .join(', ')
      : '—';
    const shared = t.metricsUrl ? `${fmt((t.sharedOperations / total(t)) * 100, 1)} %` : '—';
    const cpu = `**${fmt(cpuPerRequest(t, 'gateway') * 1000)}** / ${fmt(cpuPerRequest(t, 'stack') * 1000)} / ${fmt(cpuPerRequest(t, 'loadGenerator') * 1000)}`;
    const vsHive = lineup.sluice.includes(t) ? `**${fmt(rate(t) / rate(hiveFor(t)), 2)}×** (${hiveFor(t) === lineup.hiveTuned ? 'tuned' : 'plain'})` : '—';
    return `| ${t.label} | ${fmt(rate(t))} | ${fmt(latency(t, 50), 1)} | ${fmt(latency(t, 99), 1)} | ${cache} | ${shared} | ${cpu} | ${failures} | ${vsHive} | **${fmt(rate(t) / rate(lineup.stock), 1)}×** |`;
  });
}

/** The issue's throughput targets for a lineup, met or not, with the figures that decide them. */
function throughputTargets(lineup: Lineup): string {
  const { allOn, allOnOneWorker, dedupOff, dedupOffOneWorker, hiveTuned, hivePlain, stock } = lineup;
  const bestOn = rate(allOn) >= rate(allOnOneWorker) ? allOn : allOnOneWorker;
  const bestOff = rate(dedupOff) >= rate(dedupOffOneWorker) ? dedupOff : dedupOffOneWorker;
  return `with every feature on, ≥ 1.2× Hive Gateway tuned and p99 no worse — ${goal(rate(bestOn) >= 1.2 * rate(hiveTuned) && latency(bestOn, 99) <= latency(hiveTuned, 99))} (best row ${ratio(bestOn, hiveTuned)}, p99 ${fmt(latency(bestOn, 99), 1)} ms vs ${fmt(latency(hiveTuned, 99), 1)} ms); dedup off, ≥ 3× stock and ≥ 2× Hive plain — ${goal(rate(bestOff) >= 3 * rate(stock) && rate(bestOff) >= 2 * rate(hivePlain))} (best row ${ratio(bestOff, stock)} stock, ${ratio(bestOff, hivePlain)} Hive plain)`;
}

const TABLE_HEADER = [
  '| gateway | requests/s | p50 ms | p99 ms | response cache | operations shared (dedup) | CPU µs per request: **gateway** / subgraphs + gpu-server + Redis / load generator² | failures¹ | vs Hive | vs stock |',
  '| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
];

/** The share of the machine's CPU capacity that went to processes other than the gateway under load, the stack and the load generator. */
const outsideShare = (runs: Run[]) =>
  runs.reduce((n, r) => n + Math.max(0, r.machineCpuMs - r.cpuMs.gateway - r.cpuMs.stack - r.cpuMs.loadGenerator), 0) / runs.reduce((n, r) => n + r.seconds * 1000 * os.cpus().length, 0);

function outsideNote(lineup: Lineup): string {
  const allRuns = lineup.all.flatMap((t) => t.runs);
  return `CPU time not accounted to this benchmark's processes (other work on the machine, and kernel time such as loopback networking) was ${fmt(outsideShare(allRuns) * 100)} % of the machine's capacity during the measured runs, at most ${fmt(Math.max(...allRuns.map((r) => outsideShare([r]))) * 100)} % in one run (the median of the rounds damps such runs).`;
}

const FAILURES_NOTE =
  "¹ Errors, timeouts, non-2xx responses and responses whose body differed from that gateway's first answer (each first answer was checked to hold the stock gateway's data and no errors).";

/** Sluice's own graph and query (sections 1 and 2 of the header comment). */
async function sluiceWorkload(stack: Awaited<ReturnType<typeof benchStack>>['stack'], token: string, loadBefore: number): Promise<void> {
  const stops: Array<() => Promise<void>> = [];
  try {
    const userId = await setUpUser(stack.gatewayUrl, token);
    // The anchors are signed with what the user's session token carries, as Sluice signs it.
    const lineup = await startLineup(stack, EVERY_FEATURE, {}, bearer(token), { stackEnv: stack.env, sub: userId, scopes: SESSION_SCOPES }, stops);
    const { allOn, allOnOneWorker, dedupOff, dedupOffOneWorker, hiveTuned: hiveTunedTarget, hivePlain: hivePlainTarget, stock: stockTarget } = lineup;
    const workers = os.availableParallelism();
    // Everything the gateways call: the four subgraphs, the gpu-server and Redis.
    const { auth: authPort, billing, knowledge, inference, gpuHttp } = stack.ports;
    const stackPids = [authPort, billing, knowledge, inference, gpuHttp, Number(new URL(stack.redisUrl).port)].flatMap(processTree);

    // 1. Throughput.
    const body = JSON.stringify({ query: NESTED_QUERY });
    const first = await measureThroughput(lineup, stackPids, body);
    const rows = throughputRows(lineup);
    console.log(rows.join('\n'));
    // One nested request at a time: how long one execution takes when nothing else runs, the unit dedup shares.
    const aloneAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const alone = async (t: Target) => {
      await sequential(t.url, t.headers, body, ALONE_REQUESTS / 5, aloneAgent);
      return percentile(await sequential(t.url, t.headers, body, ALONE_REQUESTS, aloneAgent), 50);
    };
    const aloneMs = new Map<Target, number>();
    for (const t of [dedupOffOneWorker, hivePlainTarget, stockTarget]) aloneMs.set(t, await alone(t));
    aloneAgent.destroy();

    // 2. Overhead: the gateway with the response cache off vs the inference subgraph called directly.
    const overheadBody = JSON.stringify({ query: OVERHEAD_QUERY });
    const anonymous = new IdentitySigner(createPrivateKey(stack.env.SLUICE_IDENTITY_PRIVATE_KEY), 3600).sign({ sub: null, scopes: [] }, identityAudience('inference'));
    const paths = [
      { label: `Sluice gateway (response cache off, ${workers} workers)`, url: stack.gatewayUrl, headers: {} as Record<string, string> },
      { label: 'inference subgraph directly (signed identity header)', url: stack.env.SLUICE_SUBGRAPH_INFERENCE_URL, headers: { [IDENTITY_HEADER]: anonymous } },
      { label: 'Hive Gateway 2 (tuned, for comparison)', url: hiveTunedTarget.url, headers: {} as Record<string, string> },
      { label: 'stock @apollo/gateway (for comparison)', url: stockTarget.url, headers: {} as Record<string, string> },
    ];
    const agents = paths.map(() => new Agent({ keepAlive: true, maxSockets: 1 }));
    for (const [i, p] of paths.entries()) await sequential(p.url, p.headers, overheadBody, OVERHEAD_PER_ROUND, agents[i]);
    const samples: number[][] = paths.map(() => []);
    for (let round = 0; round < OVERHEAD_ROUNDS; round++) {
      for (const [i, p] of paths.entries()) samples[i].push(...(await sequential(p.url, p.headers, overheadBody, OVERHEAD_PER_ROUND, agents[i])));
    }
    for (const agent of agents) agent.destroy();
    const [gatewayP50, directP50] = [percentile(samples[0], 50), percentile(samples[1], 50)];
    const overheadMs = gatewayP50 - directP50;
    const overheadRows = paths.map(
      (p, i) => `| ${p.label} | ${fmt(percentile(samples[i], 50), 3)} | ${fmt(percentile(samples[i], 99), 3)} | ${i === 1 ? '—' : `${fmt(percentile(samples[i], 50) - directP50, 3)} ms`} |`,
    );
    console.log(overheadRows.join('\n'));

    const bestOff = rate(dedupOff) >= rate(dedupOffOneWorker) ? dedupOff : dedupOffOneWorker;
    const hitShare = (allOn.cacheStatuses.HIT ?? 0) / total(allOn);
    const report = [
      `One stack (\`benchStack\`: Redis server, gpu-server, the four subgraphs), one signed-in user with an API key and two documents, the load generator (autocannon) in the same machine. Every gateway runs in its own process(es) on the same subgraphs; ${CONNECTIONS} concurrent keep-alive connections, ${ROUNDS} rounds of ${SECONDS} s per gateway, alternating (after a ${WARMUP_SECONDS} s warm-up each); requests/s is the median of the rounds, latencies are over all rounds (\`npx tsx bench/gateway-throughput.ts --workload sluice\`). The public benchmark's workload is the next section.`,
      '',
      "The query (four subgraphs, seven fetches in its plan: `me` from auth; its balance and usage from billing and its documents (with their owners' documents) from knowledge; the owners' e-mail from auth and balance from billing; `models` from inference and their prices from billing):",
      '',
      '```graphql',
      NESTED_QUERY,
      '```',
      '',
      `"Every feature on": the caller signs in (bearer session token, verified and cached), operation limits, demand control enforcing a cost limit the query passes (\`GATEWAY_MAX_COST=${EVERY_FEATURE.GATEWAY_MAX_COST}\`), authorization, rate limits configured and passing (\`GATEWAY_RATE_LIMITS=${EVERY_FEATURE.GATEWAY_RATE_LIMITS}\`: one Redis script per request), APQ on (the requests carry the whole query, as the other gateways get it), the response cache on with nothing cacheable (one Redis lookup per request), metrics, and dedup (inbound operations and subgraph fetches) unless the row says otherwise. Hive Gateway runs its own CLI (\`hive-gateway supergraph\`, bench/support/hive-gateway.ts) in its public benchmark setting ("tuned": \`--jit\`, \`inboundInflightRequestDeduplication\` and its default outbound deduplication) and with neither ("plain": no JIT, no deduplication either way).`,
      '',
      ...TABLE_HEADER,
      ...rows,
      '',
      `Targets (issue 19): ${throughputTargets(lineup)}; gateway CPU per request at least halved from 610 µs (1 worker, dedup on, before issue 19) — ${goal(cpuPerRequest(allOnOneWorker, 'gateway') <= 0.305)} (${fmt(cpuPerRequest(allOnOneWorker, 'gateway') * 1000)} µs).`,
      '',
      `Response cache: ${fmt(hitShare * 100, 1)} % of the responses with every feature on were hits (the query's responses say \`Cache-Control: ${first.cacheControl ?? 'none'}\` through the stock gateway: \`apiKeys\`, \`balance\`, \`usage\` and \`documents\` carry no max-age hint, so nothing is cacheable). "Operations shared" is the share of requests answered by an identical operation already in flight for the same user (\`sluice_gateway_deduplicated_total{kind="operation"}\`): all ${CONNECTIONS} connections are one user asking the same thing. Those callers share one execution and one serialized answer (gateway/pipeline/serialized-results.ts): the same bytes are written to each socket.`,
      '',
      `Fairness: Hive Gateway and the stock gateway run one process each; Sluice runs ${workers} workers (one per core) by default, and the 1-worker rows compare process for process. The anchors sign one identity header at start-up and authenticate nothing, while Sluice does everything listed above per request. All run on the same subgraphs. One nested request alone (one connection, ${ALONE_REQUESTS} requests, p50): ${[...aloneMs].map(([t, ms]) => `${fmt(ms, 1)} ms through ${t.label}`).join(', ')} — three dependent steps of loopback fetches into Node subgraphs decide it.`,
      '',
      `With dedup off every request is executed, and on a saturated machine requests/s ≈ ${os.cpus().length} cores ÷ the total CPU per request, most of which is then the subgraphs' (${fmt(cpuPerRequest(stockTarget, 'stack') * 1000)} µs per request in the stock row): a gateway costing no CPU at all, with the rest costing what it did in the best dedup-off row, would reach about ${fmt(
        (cpuPerRequest(stockTarget, 'gateway') + cpuPerRequest(stockTarget, 'stack') + cpuPerRequest(stockTarget, 'loadGenerator')) /
          (cpuPerRequest(bestOff, 'stack') + cpuPerRequest(bestOff, 'loadGenerator')),
        1,
      )}× the stock row on this machine.`,
      '',
      FAILURES_NOTE,
      '',
      `² User + system CPU time during the measured runs (from /proc), divided by the requests served: the gateway's processes (primary and workers), everything it calls, and this benchmark process (autocannon).`,
      '',
      `**Gateway overhead**: \`${OVERHEAD_QUERY}\` (public, inference only), one connection, one request at a time, ${OVERHEAD_ROUNDS} alternating rounds of ${OVERHEAD_PER_ROUND} requests after a warm-up; latency in ms.`,
      '',
      '| path | p50 ms | p99 ms | p50 overhead vs direct |',
      '| --- | ---: | ---: | ---: |',
      ...overheadRows,
      '',
      `Target p50 overhead < 1 ms: ${overheadMs < 1 ? 'met' : 'NOT met'} (${fmt(overheadMs, 3)} ms). The gateway's path adds an HTTP hop and its own work: authentication (anonymous here), operation limits, demand control, authorization, planning (cached), dedup lookups, signing the identity, and the metrics.`,
      '',
      outsideNote(lineup),
      '',
      `${loadNote(loadBefore)}; the end figure includes this benchmark's own processes (the gateway under load, the stack, the load generator).`,
    ].join('\n');
    console.log(report);
    recordResult('gateway-throughput', '9 Gateway throughput vs Hive Gateway and stock @apollo/gateway, and gateway overhead', report);
    if (lineup.all.some((t) => t.runs.some((r) => r.failures > 0))) process.exitCode = 1;
  } finally {
    await Promise.all(stops.map((stop) => stop()));
  }
}

/** The public gateways benchmark's graph and query (section 3 of the header comment). */
async function federationWorkload(stack: Awaited<ReturnType<typeof benchStack>>['stack'], loadBefore: number): Promise<void> {
  const subgraphs = await startBenchmarkSubgraphs();
  const stops: Array<() => Promise<void>> = [];
  try {
    const graph = { supergraphFile: subgraphs.supergraphFile };
    const lineup = await startLineup(stack, EVERY_FEATURE_FOREIGN, { GATEWAY_SUPERGRAPH_FILE: subgraphs.supergraphFile }, {}, graph, stops);
    // Everything the gateways call: the four subgraphs, and Redis (Sluice's rate limits, APQ and response cache).
    const stackPids = [...Object.values(subgraphs.ports), Number(new URL(stack.redisUrl).port)].flatMap(processTree);
    const first = await measureThroughput(lineup, stackPids, JSON.stringify({ query: BENCHMARK_QUERY }));
    const rows = throughputRows(lineup);
    console.log(rows.join('\n'));
    const { allOn, allOnOneWorker } = lineup;
    const workers = os.availableParallelism();
    const report = [
      `The workload of the public GraphQL gateways benchmark (graphql-hive/graphql-gateways-benchmark) in shape: four subgraphs of our own (bench/support/federation-benchmark-subgraphs.ts: accounts, inventory, products, reviews; static in-memory data; \`@requires(fields: "price weight")\`, \`@provides(fields: "username")\`), each a lean HTTP server (\`@apollo/subgraph\`'s schema, each distinct query parsed and validated once) in a process of its own, and its one deep query, whose answer is ${fmt(Buffer.byteLength(first.text) / 1000, 1)} KB. A foreign graph: Sluice serves the composed supergraph file (\`--supergraph\`, \`GATEWAY_SUPERGRAPH_FILE\`); the subgraphs expect no identity. Load as in the section above: ${CONNECTIONS} concurrent keep-alive connections (autocannon, in the same machine), ${ROUNDS} alternating rounds of ${SECONDS} s per gateway after a ${WARMUP_SECONDS} s warm-up each; requests/s is the median of the rounds, latencies over all rounds (\`npx tsx bench/gateway-throughput.ts --workload federation\`).`,
      '',
      '```graphql',
      BENCHMARK_QUERY,
      '```',
      '',
      `"Every feature on" for a foreign graph: the caller is anonymous (the graph has no auth subgraph to sign in with; Sluice still runs its authentication step, which finds no credentials), operation limits, demand control measuring the estimate without a budget (its default on a graph that declares no costs or list sizes), rate limits configured and passing (\`GATEWAY_RATE_LIMITS=${EVERY_FEATURE_FOREIGN.GATEWAY_RATE_LIMITS}\`: one Redis script per request, counted per client address), APQ on (the requests carry the whole query), the response cache on with nothing cacheable (the subgraphs give no cache hints: \`Cache-Control: ${first.cacheControl ?? 'none'}\` through the stock gateway), metrics, and dedup unless the row says otherwise. Hive Gateway and the stock gateway as in the section above, on the same supergraph file.`,
      '',
      ...TABLE_HEADER.map((line) => line.replace('subgraphs + gpu-server + Redis', 'the four subgraphs + Redis')),
      ...rows,
      '',
      `Targets (issue 19), on this workload: ${throughputTargets(lineup)}. Gateway CPU per request with every feature on: ${fmt(cpuPerRequest(allOnOneWorker, 'gateway') * 1000)} µs with 1 worker, ${fmt(cpuPerRequest(allOn, 'gateway') * 1000)} µs with ${workers}.`,
      '',
      `The subgraphs' own CPU per request is the middle figure of the CPU column (all four processes, and Redis): with dedup off it is what each executed request costs them, the floor under every gateway's rate on ${os.cpus().length} shared cores.`,
      '',
      FAILURES_NOTE,
      '',
      "² User + system CPU time during the measured runs (from /proc), divided by the requests served: the gateway's processes (primary and workers), the four subgraph processes and Redis, and this benchmark process (autocannon).",
      '',
      outsideNote(lineup),
      '',
      `${loadNote(loadBefore)}; the end figure includes this benchmark's own processes.`,
    ].join('\n');
    console.log(report);
    recordResult('gateway-throughput-federation', '9b Gateway throughput on the public gateways-benchmark workload (≈ 87 KB answers)', report);
    if (lineup.all.some((t) => t.runs.some((r) => r.failures > 0))) process.exitCode = 1;
  } finally {
    await Promise.all(stops.map((stop) => stop()));
    await subgraphs.stop();
  }
}

async function main(): Promise<void> {
  // The stack's own gateway (a worker per core, response cache off) serves the set-up and the overhead paths only; the federation workload uses its Redis.
  const { stack, token } = await benchStack({ GATEWAY_RESPONSE_CACHE: 'false' });
  try {
    if (workloads.includes('sluice')) await sluiceWorkload(stack, token, os.loadavg()[0]);
    if (workloads.includes('federation')) await federationWorkload(stack, os.loadavg()[0]);
  } finally {
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
