/**
 * Issues 16 and 19 (3): where the CPU of a streamed token goes, process by
 * process, through each door a client streams by. Every process of the stack
 * runs under V8's sampling profiler (`--cpu-prof`); the benchmark alternates
 * rounds of concurrent streams through /v1/chat/completions (SSE) and through
 * the `completionStream` subscription (graphql-ws), the load of
 * bench/openai-api.ts, until each door has run for the given seconds. Each
 * process's samples are attributed to the door whose round was running, so
 * the two doors' cost per token is compared process by process in one run:
 * the gateway (its workers summed), each subgraph, the gpu-server's main
 * thread and its generation thread, and this process (the client, from
 * process.cpuUsage). The gateway's and the inference subgraph's self time is
 * then broken down for each door.
 *
 *   npx tsx bench/profile-streams.ts [seconds per door, default 8]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import type { CpuProfile } from '../gpu-server/testing/load-profile';
import { loadNote, percentile, recordResult } from './results';
import { benchStack } from './stack';
import { addAttribution, type Attribution, attribute, busyUs, monotonicUs, readCpuProfiles, selfTimeTables, type Window } from './support/profile-window';
import { type Round, streamDoors } from './support/stream-doors';

const SECONDS = Number(process.argv[2] ?? 8);
if (!(SECONDS >= 1)) throw new Error(`seconds expects a number of at least 1, but got ${process.argv[2]}`);
const STREAMS = 50;
const MAX_TOKENS = 32;
const MESSAGES = [{ role: 'user', content: 'Describe a river in a few words.' }];
const DOORS = ['sse', 'graphqlWs'] as const;
type Door = (typeof DOORS)[number];
const DOOR_NAMES: Record<Door, string> = { sse: '/v1/chat/completions, SSE', graphqlWs: 'completionStream, graphql-ws' };
/** The hops a token crosses after the gpu-server, whose self time is broken down. */
const BROKEN_DOWN = ['gateway', 'inference'];

/** What a profile's process or thread is, from the code its samples ran: a service's directory, or the gpu-server backend a worker thread runs. */
function ownerOf(profile: CpuProfile, file: string): string {
  const counts = new Map<string, number>();
  for (const node of profile.nodes) {
    const match = /\/(gateway|subgraphs\/\w+|gpu-server\/backends\/[\w-]+|gpu-server)\//.exec(node.callFrame.url);
    if (match) counts.set(match[1], (counts.get(match[1]) ?? 0) + 1);
  }
  const [dir] = [...counts].sort((a, b) => b[1] - a[1])[0] ?? ["threads running none of the project's code (the module-loader hooks thread)"];
  // CPU.<date>.<time>.<pid>.<thread>.<sequence>.cpuprofile: thread 0 is the main thread.
  const thread = file.split('.')[4];
  if (dir.startsWith('gpu-server/backends/')) return `gpu-server thread (${dir.slice('gpu-server/backends/'.length)})`;
  if (dir === 'gpu-server') return thread === '0' ? 'gpu-server main thread' : 'gpu-server other thread';
  return dir.replace(/^subgraphs\//, '');
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const profileDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-stream-profile-'));
  const { stack, token } = await benchStack({}, { nodeArgs: () => ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] });
  const doors = streamDoors(stack, token, { streams: STREAMS, maxTokens: MAX_TOKENS, messages: MESSAGES });
  const windows: Record<Door, Window[]> = { sse: [], graphqlWs: [] };
  const rounds: Record<Door, Round[]> = { sse: [], graphqlWs: [] };
  try {
    for (const door of DOORS) await doors[door](); // warm-up
    const measured = (door: Door) => rounds[door].reduce((n, r) => n + r.seconds, 0);
    while (DOORS.some((door) => measured(door) < SECONDS)) {
      for (const door of DOORS) {
        const from = monotonicUs();
        rounds[door].push(await doors[door]());
        windows[door].push([from, monotonicUs()]);
      }
    }
  } finally {
    await doors.close();
    await stack.stop(); // each process writes its profile as it exits
  }

  try {
    const profiles = readCpuProfiles(profileDir, "the stack's processes");
    // µs of CPU per delivered token, by owner and door; the hops' attributions for each door (the gateway's workers summed).
    const usPerToken = new Map<string, Record<Door, number>>();
    const hops = new Map<string, Record<Door, Attribution | undefined>>(BROKEN_DOWN.map((owner) => [owner, { sse: undefined, graphqlWs: undefined }]));
    const tokens = (door: Door) => rounds[door].reduce((n, r) => n + r.tokens, 0);
    const span = (door: Door) => windows[door].reduce((n, [from, to]) => n + (to - from), 0);
    for (const { file, profile } of profiles) {
      const owner = ownerOf(profile, file);
      const row = usPerToken.get(owner) ?? { sse: 0, graphqlWs: 0 };
      const hop = hops.get(owner);
      for (const door of DOORS) {
        const seen = attribute(profile, windows[door]);
        row[door] += busyUs(seen, span(door)) / tokens(door);
        if (hop) hop[door] = hop[door] ? addAttribution(hop[door], seen) : seen;
      }
      usPerToken.set(owner, row);
    }
    const client: Record<Door, number> = { sse: 0, graphqlWs: 0 };
    for (const door of DOORS) client[door] = (rounds[door].reduce((n, r) => n + r.clientCpuMs, 0) * 1000) / tokens(door);
    usPerToken.set('this benchmark (the client)', client);
    const total = (door: Door) => [...usPerToken.values()].reduce((n, row) => n + row[door], 0);
    const rate = (door: Door) => tokens(door) / (span(door) / 1e6);
    const ttft = (door: Door) =>
      percentile(
        rounds[door].flatMap((r) => r.ttftMs),
        50,
      );
    const us = (x: number) => String(Math.round(x) || 0);
    const writes = (owner: string, door: Door) => {
      const seen = hops.get(owner)?.[door];
      return seen && seen.busy > 0 ? ((seen.byFunction.get('writev') ?? 0) / seen.busy) * (usPerToken.get(owner)?.[door] ?? 0) : 0;
    };
    const rows = [...usPerToken].filter(([, row]) => row.sse + row.graphqlWs >= 1).sort((a, b) => b[1].sse - a[1].sse);
    const report = [
      `\`npx tsx bench/profile-streams.ts ${SECONDS}\` — every process of the stack under V8's sampling profiler (\`--cpu-prof\`); rounds of ${STREAMS} concurrent streams of ${MAX_TOKENS} tokens (sluice-chat, no seed) alternating between the two doors after a warm-up, until each door has run ${SECONDS} s, as bench/openai-api.ts loads them; each sample counts for the door whose round was running. CPU per token is the busy share of each thread's samples over the door's rounds, times their length, over the tokens delivered (server-counted); the gateway's workers are summed. Threads that do not run JavaScript (V8's concurrent GC and compiler, libuv's pool, ONNX Runtime's own threads) are not in a CPU profile.`,
      '',
      '| door | tokens/s under the profiler | time to first token p50 | rounds |',
      '|---|---:|---:|---:|',
      ...DOORS.map((door) => `| ${DOOR_NAMES[door]} | ${rate(door).toFixed(0)} | ${ttft(door).toFixed(1)} ms | ${rounds[door].length} |`),
      '',
      '| CPU µs per token | SSE | graphql-ws | SSE − graphql-ws |',
      '|---|---:|---:|---:|',
      ...rows.map(([owner, row]) => `| ${owner} | ${us(row.sse)} | ${us(row.graphqlWs)} | ${us(row.sse - row.graphqlWs)} |`),
      `| **all of the above** | **${us(total('sse'))}** | **${us(total('graphqlWs'))}** | **${us(total('sse') - total('graphqlWs'))}** |`,
      '',
      `Of that, socket writes (\`writev\`'s self time) per token: the gateway ${us(writes('gateway', 'sse'))} µs through SSE against ${us(writes('gateway', 'graphqlWs'))} µs through graphql-ws, the inference subgraph ${us(writes('inference', 'sse'))} against ${us(writes('inference', 'graphqlWs'))} µs. An SSE stream is an HTTP response of its own, so each token is one write on its own connection; graphql-ws carries every stream of a client on one socket, and the gateway's and the subgraph's endpoints write what one turn of the event loop produced for it at once (lib/graphql-ws-endpoint.ts). The SSE requests are also shared out over the gateway's workers (one connection each, as the cluster hands them out), and each worker has its own upstream socket to the inference subgraph, while the one graphql-ws client's streams stay on one worker and one upstream socket: through SSE, the subgraph writes each turn's tokens to a socket per worker.`,
      '',
      ...[...hops].flatMap(([owner, byDoor]) =>
        DOORS.flatMap((door) => {
          const seen = byDoor[door];
          return seen
            ? [
                `**${owner === 'gateway' ? "The gateway's workers" : `The ${owner} subgraph`} during the ${DOOR_NAMES[door]} rounds.**`,
                '',
                ...selfTimeTables(seen, { places: 10, functions: 12, callers: 4 }),
                '',
              ]
            : [];
        }),
      ),
      `${loadNote(loadBefore)}.`,
    ].join('\n');
    console.log(report);
    recordResult('stream-profile', "Where a streamed token's CPU goes, SSE against graphql-ws (issues 16, 19)", report);
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
