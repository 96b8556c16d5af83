/**
 * The chaos table (issue 21): every fault the chaos suite knows, one after
 * another on one stack (every service in its own process, two gpu-servers,
 * two gateway workers, its own append-only Redis) under a steady load of
 * mixed queries, completions and streams, with the gateway's default
 * timeouts and breaker settings. For each fault: the share of query answers
 * during the outage that kept every part of the answer the fault does not
 * own, how many carried errors, how fast the answers missing a part came
 * back, how long after the service was ready again answers were whole, what
 * became of completions and streams, and whether every balance, hold, usage
 * figure and usage event agreed afterwards.
 *
 *   npx tsx bench/chaos.ts [outage seconds, default 8] [only the faults whose name matches this regular expression]
 */
import * as os from 'node:os';
import {
  busiestGpuServerKilled,
  type ChaosOptions,
  type ChaosStack,
  killAndRestart,
  type LoadMix,
  type Outcome,
  rollingRestart,
  runScenario,
  type Scenario,
  type ScenarioResult,
  signUpUsers,
  startChaosStack,
} from '../test/chaos/harness';
import { gatewayWorkersAnswering } from '../test/support/gateway-workers';
import { loadNote, percentile, recordResult } from './results';

const OUTAGE_MS = Number(process.argv[2] ?? 8) * 1_000;
const ONLY = new RegExp(process.argv[3] ?? '');
const MIX: LoadMix = { queryClients: 6, completionClients: 2, streamClients: 2, streamTokens: 150, pauseMs: 20 };
const PHASES = { beforeMs: 3_000, outageMs: OUTAGE_MS, afterMs: 8_000 };

/** Kills one gateway worker; recovery is the cluster's replacement answering. */
function gatewayWorkerKilled(): Scenario {
  let victim = -1;
  return {
    name: 'one of two gateway workers killed (SIGKILL)',
    affects: [],
    gpuCountsSurvive: true,
    inject: async (chaos) => {
      [victim] = await chaos.gatewayWorkerPids();
      process.kill(victim, 'SIGKILL');
    },
    // The cluster forks a replacement when a worker exits.
    recover: async (chaos) => void (await gatewayWorkersAnswering(chaos.stack.gatewayUrl, 2, { without: victim })),
  };
}

/** The rollout of every service, one replica at a time (harness.ts rollingRestart), on the replicated stack; the fault is the whole sequence. */
const rolledOut: Scenario = {
  name: 'rolling restart of every service (SIGTERM, drain, start, wait for /ready), two replicas of each behind one address, one replica at a time',
  affects: [],
  gpuCountsSurvive: false,
  inject: async (chaos) => {
    if (!chaos.replicas) throw new Error('the rolling restart expects a replicated chaos stack, but got a single one');
    await rollingRestart(chaos.replicas);
  },
  recover: async () => undefined,
};

const SCENARIOS: Scenario[] = [
  { name: 'auth killed, restarted', ...killAndRestart('auth', ['auth']) },
  { name: 'billing killed, restarted (completions requested meanwhile)', ...killAndRestart('billing', ['billing']) },
  { name: 'knowledge killed, restarted', ...killAndRestart('knowledge', ['knowledge']) },
  { name: 'inference killed, restarted', ...killAndRestart('inference', ['inference']) },
  { name: 'gpu-server killed mid-stream (one of two)', ...busiestGpuServerKilled() },
  {
    name: 'billing hung (SIGSTOP, then SIGCONT)',
    affects: ['billing'],
    gpuCountsSurvive: true,
    inject: (chaos) => chaos.pause('billing'),
    recover: async (chaos) => chaos.resume('billing'),
  },
  {
    name: 'Redis restarted (SIGTERM, append-only file kept)',
    affects: ['redis'],
    gpuCountsSurvive: true,
    inject: (chaos) => chaos.stopRedis(),
    recover: (chaos) => chaos.startRedis(),
  },
  gatewayWorkerKilled(),
];

/** What a fault still costs, and why, for the rows where that is not obvious from the table. */
const BOUNDS = [
  "Targets (issue 21): 100 % of the answers keep the others' data, recovery ≤ 2 s after ready, money exact, and a rolling restart fails no request that is not a stream. What the faults still cost:",
  '- **a gateway process killed**: what was in flight on it (a completion, a stream) gets no answer; the other process carries on, and queries are sent again by the client (above).',
  "- **Redis down**: every part of the load's query but `models` and `pricing` lives in Redis; an answer waits for the services' Redis clients to give up (about 0.6 s on one server, three reconnections) or for Redis to be back, and a signed-in caller's credential is served on auth's last answer meanwhile (`GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS`); prices are answered from the last ones billing read. The slowest answers of the outage (the max of its fail-fast column, several seconds) wait longer than that, which is not explained yet.",
  "- **rolling restart**: two replicas of every service (two gateway processes, two of each subgraph, a gpu-server per replica) behind round-robin addresses standing in for Kubernetes Services (test/support/replicated-stack.ts). A replica draining on SIGTERM refuses new connections, which go to the other, and leaves its idle keep-alive connections to their clients (each carries at most one more request, answered with `Connection: close`), so no request is lost in the instant the drain starts (lib/http-service.ts). The gateway retries a query on any connection error and a mutation whose connection was refused (it never reached the subgraph), and its breaker counts calls that failed after their retries, not attempts. What may still end early: a stream whose inference replica restarts (coded `SERVICE_UNAVAILABLE`, retryable; a gpu-server's streams are started again on the other by inference), and a request still running when its replica's drain timeout (10 s) runs out.",
];

/** A share in whole percents, with one decimal where rounding would show 0 % or 100 % for what is neither. */
const pct = (n: number, of: number) => {
  if (of === 0) return '–';
  const share = (100 * n) / of;
  return `${(share > 0 && share < 1) || (share > 99 && share < 100) ? share.toFixed(1) : share.toFixed(0)} %`;
};
const ms = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : '–');

/** "12 ok, 30 SERVICE_UNAVAILABLE" for the requests of one kind. */
function endings(outcomes: Outcome[]): string {
  const counts = new Map<string, number>();
  for (const o of outcomes) {
    const key = o.ok ? 'ok' : o.codes.join('+') || 'no code';
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => `${n} ${key}`).join(', ') || '–';
}

/** "3 × models, pricing (SERVICE_UNAVAILABLE)": what the answers that did not keep the others' data lost, and their errors' codes. */
function lost(result: ScenarioResult): string {
  const counts = new Map<string, number>();
  for (const { answer, lost } of result.notKept) {
    const key = `${lost.join(', ')} (${[...new Set([...answer.codes, ...answer.reasons])].join(', ') || 'no error'})`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const retried = result.outageAnswers.filter((o) => o.retried).length;
  const lostText = [...counts].map(([key, n]) => `${n} × ${key}`).join('; ') || '–';
  return retried ? `${lostText} (${retried} answered on a second attempt after TRANSPORT)` : lostText;
}

function row(result: ScenarioResult): string {
  const { outageAnswers: answers } = result;
  const inOutage = (kind: Outcome['kind']) => result.outcomes.filter((o) => o.kind === kind && o.end > result.faultAt && o.start < result.readyAt);
  const withErrors = answers.filter((o) => o.codes.length > 0).length;
  const money = result.money.exact
    ? `yes (${result.money.events} events${result.money.gpuRuns !== undefined ? `, ${result.money.gpuRuns} GPU runs` : ''}${result.money.abandoned ? `; ${result.money.abandoned} requests in flight on the killed process, never delivered nor charged` : ''})`
    : `**no**: ${result.money.problems.join('; ')}`;
  return `| ${result.name} | ${((result.readyAt - result.faultAt) / 1_000).toFixed(1)} s | ${pct(Math.round(result.kept * answers.length), answers.length)} of ${answers.length} | ${pct(withErrors, answers.length)} | ${ms(result.failFast.p50)} / ${ms(result.failFast.max)} | ${ms(result.recoveryMs)} | ${lost(result)} | ${endings(inOutage('complete'))} | ${endings(inOutage('stream'))} | ${money} |`;
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const results: ScenarioResult[] = [];
  // The single faults on one process per service, the rollout on two replicas of each: each set on a stack of its own.
  const runs: [Scenario[], ChaosOptions][] = [
    [SCENARIOS, { gpuServers: 2, gatewayWorkers: 2 }],
    [[rolledOut], { gpuServers: 1, replicated: true }],
  ];
  for (const [scenarios, options] of runs) {
    const chosen = scenarios.filter((s) => ONLY.test(s.name));
    if (chosen.length === 0) continue;
    const chaos: ChaosStack = await startChaosStack(options);
    try {
      for (const scenario of chosen) {
        process.stdout.write(`${scenario.name} … `);
        const users = await signUpUsers(chaos, 4, 'chaos-bench');
        const result = await runScenario(chaos, scenario, PHASES, MIX, users);
        results.push(result);
        process.stdout.write(`${row(result)}\n`);
      }
    } finally {
      await chaos.stop();
    }
  }
  const all = results.flatMap((r) => r.outcomes.filter((o) => o.kind === 'query'));
  const body = [
    `\`npx tsx bench/chaos.ts ${OUTAGE_MS / 1_000}\`: one stack (every service its own process, 2 gpu-servers, 2 gateway workers, its own Redis with appendonly yes; for the rolling restart two replicas of every service behind one address per tier), the gateway's default subgraph settings (30 s deadline, a health probe after 2 s without an answer, breaker opening after 5 failures for 1 s), response cache off so answers come from the subgraphs. Load: ${MIX.queryClients} clients looping \`{ me { email balance { total } documents(first: 1) { id } } models { id pricing { output } } }\`, ${MIX.completionClients} looping \`complete\` (sluice-chat-batch, 4 tokens), ${MIX.streamClients} looping \`completionStream\` (sluice-chat, ${MIX.streamTokens} tokens), each pausing ${MIX.pauseMs} ms; fresh users per fault; ${PHASES.beforeMs / 1_000} s of load, the fault for ${OUTAGE_MS / 1_000} s (plus the restart's own time), then ${PHASES.afterMs / 1_000} s.`,
    '',
    '"Kept data": query answers started during the outage that kept every part the fault does not own (a part reached through the failed service cannot be kept: `balance` hangs off auth\'s `me`; Redis holds auth\'s, billing\'s and knowledge\'s data). "Fail-fast": latency p50 / max of the answers started during the outage. "Recovery": from the service ready again to the end of the last answer still missing a part. "What the others lost": for answers that lost a part the fault does not own, which parts, with their errors\' codes and reasons; a query that got no answer at all (TRANSPORT: its gateway process died under it) is sent once more, as Apollo Client\'s RetryLink does, and counted here; a completion whose fate is unknown (no answer, its inference process lost under it, or an earlier attempt still running) is sent again with its idempotency key, up to 3 attempts, and is generated and billed once; streams are never sent again. Completions and streams: those running at any time during the outage, by how they ended. "Money exact": every user\'s credit spent = usage billed = invoices, no hold left, usage counting each usage event once with its tokens (by its eventId: a copy that a publisher\'s retry added to the stream as Redis went away counts once, as billing settles it), and (where the GPU servers survived) no more GPU generations than usage events (a stream cancelled before the GPU counted it still has its empty event), apart from generations of requests in flight on a killed inference process: the GPU may finish one, but its text never reaches the client and nothing is charged (its hold is released when the reservation expires, `BILLING_RESERVATION_TTL_MS`, 20 s here, 15 min by default).',
    '',
    "| fault | outage | answers with the others' data | answers with errors | fail-fast p50 / max | recovery after ready | what the others lost | completions | streams | money exact |",
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...results.map(row),
    '',
    `All query answers: ${all.length}, latency p50 ${ms(
      percentile(
        all.map((o) => o.end - o.start),
        50,
      ),
    )}.`,
    '',
    ...BOUNDS,
    '',
    loadNote(loadBefore),
  ].join('\n');
  recordResult('chaos', 'Issue 21: chaos, one fault at a time under load', body);
  process.stdout.write(`${body}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
