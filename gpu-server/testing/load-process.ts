/**
 * Runs the closed-loop load of load-generator.ts in child processes, so the
 * clients do not share the server's event loop (as perf_analyzer runs beside
 * Triton), and from several of them at once when one client process would be
 * the bound. Each child is this file, run with the parent's tsx loader.
 *
 * The children warm up (JIT, channel, the server's session), then wait for
 * the parent's signal, so every measured run starts together; throughput is
 * the parent's wall time from that signal to the last answer. Each child
 * reports the CPU it spent measuring, and the parent the CPU of its own
 * process (the server, when it runs in the parent) and its main thread's
 * event-loop utilisation: together they say whether the clients or the
 * server were the bound.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { closedLoop, embedRequest, sampleTexts, tritonClient, type LoadResult } from './load-generator';

export interface EmbedLoad {
  port: number;
  model: string;
  /** Requests in flight in all processes together. */
  concurrency: number;
  /** Requests in all processes together. */
  requests: number;
  /** Texts per request. @default 1 */
  textsPerRequest?: number;
  /** Client processes sharing the load. @default 1 */
  processes?: number;
}

export interface SpreadLoadResult extends LoadResult {
  /** CPU seconds the client processes spent during the measured run, all together. */
  clientCpuSeconds: number;
  /** CPU seconds of this (the parent's) process during the run: every thread, the server's instances included when it runs here. */
  parentCpuSeconds: number;
  /** Share of the run this process's main thread was busy (0–1): near 1, its event loop was the bound. */
  parentEventLoopUtilization: number;
}

/** What a child is told: its share of the load. */
interface ChildLoad {
  port: number;
  model: string;
  concurrency: number;
  requests: number;
  textsPerRequest: number;
  /** Where this child's texts start in the shared numbering, so no two processes send the same text. */
  firstText: number;
}

type ToChild = { type: 'go' };
type FromChild = { type: 'warm' } | { type: 'done'; result: LoadResult; cpuSeconds: number };

/** Splits `total` into `parts` near-equal whole shares. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** Sends `load` from `load.processes` child processes at once and resolves with the whole run's measurement. */
export async function runEmbedLoadInChildren(load: EmbedLoad): Promise<SpreadLoadResult> {
  const processes = load.processes ?? 1;
  if (!Number.isInteger(processes) || processes < 1 || processes > load.concurrency) {
    throw new RangeError(`processes expects an integer from 1 to the concurrency (${load.concurrency}), but got ${processes}`);
  }
  const concurrency = shares(load.concurrency, processes);
  const requests = shares(load.requests, processes);
  const per = load.textsPerRequest ?? 1;
  const children: ChildProcess[] = [];
  const warm: Array<Promise<void>> = [];
  const done: Array<Promise<{ result: LoadResult; cpuSeconds: number }>> = [];
  let firstText = 0;
  for (let i = 0; i < processes; i++) {
    const share: ChildLoad = { port: load.port, model: load.model, concurrency: concurrency[i], requests: requests[i], textsPerRequest: per, firstText };
    firstText += requests[i] * per;
    const child = fork(__filename, [JSON.stringify(share)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    const failed = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => code === 0 || reject(new Error(`load process ${i + 1} of ${processes} exited with code ${code} before reporting`)));
    });
    const next = (type: FromChild['type']) => Promise.race([failed, new Promise<FromChild>((resolve) => child.on('message', (m: FromChild) => m.type === type && resolve(m)))]);
    warm.push(next('warm').then(() => undefined));
    done.push(next('done').then((m) => m as Extract<FromChild, { type: 'done' }>));
  }
  try {
    await Promise.all(warm);
    const cpuBefore = process.cpuUsage();
    const eluBefore = performance.eventLoopUtilization();
    const started = process.hrtime.bigint();
    for (const child of children) child.send({ type: 'go' } satisfies ToChild);
    const results = await Promise.all(done);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    const total = results.reduce((n, r) => n + r.result.requests, 0);
    return {
      requests: total,
      seconds,
      perSecond: total / seconds,
      latenciesMs: results.flatMap((r) => r.result.latenciesMs),
      clientCpuSeconds: results.reduce((s, r) => s + r.cpuSeconds, 0),
      parentCpuSeconds: (cpu.user + cpu.system) / 1e6,
      parentEventLoopUtilization: performance.eventLoopUtilization(eluBefore).utilization,
    };
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill();
  }
}

async function child(load: ChildLoad): Promise<void> {
  const client = tritonClient(load.port);
  const per = load.textsPerRequest;
  const texts = sampleTexts(load.firstText + load.requests * per).slice(load.firstText);
  const send = (i: number) => client.infer(embedRequest(load.model, texts.slice(i * per, (i + 1) * per)));
  // Warm-up, not measured: the fresh process's JIT, the channel and the server's session.
  await closedLoop(load.concurrency, Math.min(load.requests, Math.ceil(1000 / per)), send);
  const go = new Promise<void>((resolve) => process.on('message', (m: ToChild) => m.type === 'go' && resolve()));
  process.send!({ type: 'warm' } satisfies FromChild);
  await go;
  const cpuBefore = process.cpuUsage();
  const result = await closedLoop(load.concurrency, load.requests, send);
  const cpu = process.cpuUsage(cpuBefore);
  client.close();
  process.send!({ type: 'done', result, cpuSeconds: (cpu.user + cpu.system) / 1e6 } satisfies FromChild, () => process.exit(0));
}

if (require.main === module && process.send) void child(JSON.parse(process.argv[2]) as ChildLoad);

/**
 * Where the CPU of gRPC runs went, as a sentence for a benchmark's notes:
 * the clients' and the server process's cores in use (medians over `runs`)
 * and the server's main-thread utilisation, and which of them was the bound
 * on a machine of `cores` cores.
 */
export function describeBound(runs: SpreadLoadResult[], cores: number): string {
  const med = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const clients = med(runs.map((r) => r.clientCpuSeconds / r.seconds));
  const server = med(runs.map((r) => r.parentCpuSeconds / r.seconds));
  const elu = med(runs.map((r) => r.parentEventLoopUtilization));
  const bound =
    clients + server >= cores * 0.9
      ? `the machine's ${cores} cores (clients and server together use them all)`
      : elu >= 0.9
        ? "the server's main thread (gRPC, decoding, batching, the hops to the instances)"
        : 'neither CPU: the run waited on something else (other processes on the machine, or too few requests in flight)';
  return `clients ${clients.toFixed(2)} cores, server ${server.toFixed(2)} cores (its main thread busy ${(elu * 100).toFixed(0)} % of the time); bound: ${bound}`;
}
