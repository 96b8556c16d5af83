/**
 * Issue 20, item 5 (second part): prefix-affinity routing across replicas.
 * Three gpu-server processes serve sluice-chat (prefix cache on, as its
 * config.pbtxt has it); this process is the inference subgraph's router
 * (GpuTier). 20 users each replay the same 10-turn conversation (a shared
 * system prompt; each turn adds the previous answer and a new question,
 * so turn n's prompt starts with turn n−1's), all users at once, each
 * user's turns one after another with a think time between them (0–THINK_MS,
 * seeded), so turns of different users interleave as real ones do; streamed,
 * 8 tokens per answer.
 *
 * Routed two ways, alternating rounds: by load alone (least outstanding,
 * round-robin when idle), and with prefix affinity (the conversation's key,
 * as the subgraph's completions pass it: gpu-tier/prefix-affinity.ts).
 * Every round starts from caches that know nothing of its prompts (a fresh
 * system prompt per round). Reported: the share of prompt tokens served
 * from a cache (the servers' `sluice_cached_prompt_tokens`), and time to first
 * token per turn.
 *
 *   npx tsx bench/prefix-affinity.ts [rounds, default 2]
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import * as os from 'node:os';
import { createLogger } from '../lib/log';
import { prng } from '../lib/prng';
import { alternate, median, sampleTexts } from '../gpu-server/testing/load-generator';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { PROJECT_REPOSITORY } from '../gpu-server/testing/temp-repository';
import { renderChat, type ChatMessage } from '../subgraphs/inference/completions/chat-template';
import { generationOutputs, generationRequest } from '../subgraphs/inference/completions/generation-tensors';
import { GpuTier } from '../subgraphs/inference/gpu-tier/gpu-tier';
import { conversationKey } from '../subgraphs/inference/gpu-tier/prefix-affinity';
import { ModelCatalog, type ModelInfo } from '../subgraphs/inference/models/model-catalog';
import { repositoryOf, startGpuProcess, stopGpuProcess, type GpuProcess } from '../test/support/gpu-processes';
import { loadNote, percentile, recordResult } from './results';

const ROUNDS = Number(process.argv[2] ?? 2);
const USERS = 20;
const TURNS = 10;
const SERVERS = 3;
/** The GpuTier default (INFERENCE_GPU_AFFINITY_MARGIN), given explicitly so the table names it. */
const AFFINITY_MARGIN = 4;
/** Longest pause of a user between an answer and the next question. */
const THINK_MS = 400;
const log = createLogger({ bench: 'prefix-affinity' });

interface Turn {
  /** The endpoint that served it. */
  endpoint: string;
  ttftMs: number;
  promptTokens: number;
  cachedTokens: number;
}

/** One streamed turn; resolves with its time to first response and the final response's prompt counts. */
function turn(tier: GpuTier, model: ModelInfo, prompt: string, key: string | undefined): Promise<Turn> {
  const t0 = process.hrtime.bigint();
  let ttftMs: number | undefined;
  return new Promise((resolve, reject) => {
    const handle = tier.startStream(
      generationRequest(model, `bench-${randomUUID()}`, [prompt], [{ max_tokens: 8, temperature: 0, top_p: 1 }], true),
      {
        response: (response, final) => {
          ttftMs ??= Number(process.hrtime.bigint() - t0) / 1e6;
          if (!final) return;
          const [output] = generationOutputs(model, response, 1);
          resolve({ endpoint: handle.endpoint.address, ttftMs, promptTokens: output.inputTokens ?? 0, cachedTokens: output.cachedPromptTokens ?? 0 });
        },
        error: reject,
      },
      key,
    );
  });
}

/** Every user's conversation, turn by turn, all users at once; `affinity` passes the conversation key. */
async function replay(tier: GpuTier, model: ModelInfo, affinity: boolean): Promise<Turn[][]> {
  const system: ChatMessage = { role: 'system', content: `Session ${randomUUID()}. ${sampleTexts(6, 16).join('. ')}` };
  const questions = sampleTexts(TURNS, 8);
  return Promise.all(
    Array.from({ length: USERS }, async (_, u) => {
      const user = `user-${u}`;
      const think = prng(u + 1);
      const messages: ChatMessage[] = [system];
      const turns: Turn[] = [];
      for (let t = 0; t < TURNS; t++) {
        messages.push({ role: 'user', content: `${questions[t]}?` });
        turns.push(await turn(tier, model, renderChat(model.chatTemplate ?? undefined, messages), affinity ? conversationKey(user, model.id, messages) : undefined));
        messages.push({ role: 'assistant', content: `Answer ${t + 1} to ${user}: ${questions[(t + u) % TURNS]}.` });
        await new Promise((resolve) => setTimeout(resolve, think() * THINK_MS));
      }
      return turns;
    }),
  );
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  await buildModels(PROJECT_REPOSITORY);
  const repository = repositoryOf(['sluice-chat'], 'bench-affinity');
  const gpus: GpuProcess[] = [];
  let tier: GpuTier | undefined;
  try {
    for (let i = 0; i < SERVERS; i++) gpus.push(await startGpuProcess(repository));
    tier = new GpuTier({ endpoints: gpus.map((g) => g.address), deadlineMs: 120_000, log, probeIntervalMs: 2_000, affinityMargin: AFFINITY_MARGIN });
    const model = (await new ModelCatalog(tier, 60_000).get('sluice-chat'))!;
    await replay(tier, model, false); // warm-up: sessions, JIT, channels
    const [byLoad, byAffinity] = await alternate(ROUNDS, [() => replay(tier!, model, false), () => replay(tier!, model, true)]);

    const row = (label: string, rounds: Turn[][][]) => {
      const turns = rounds.flat(2);
      const hit = (ts: Turn[]) => ts.reduce((n, t) => n + t.cachedTokens, 0) / ts.reduce((n, t) => n + t.promptTokens, 0);
      // Turns 2–10: what a continued conversation sees (turn 1 can only reuse the system prompt).
      const later = rounds.flatMap((r) => r.flatMap((user) => user.slice(1)));
      const ms = (ts: Turn[]) => ts.map((t) => t.ttftMs);
      const stayed = rounds.flatMap((r) => r.flatMap((user) => user.slice(1).filter((t, i) => t.endpoint === user[i].endpoint)));
      return `| ${label} | ${(hit(turns) * 100).toFixed(1)}% (${rounds.map((r) => `${(hit(r.flat()) * 100).toFixed(1)}%`).join(', ')}) | ${(hit(later) * 100).toFixed(1)}% | ${median(ms(turns)).toFixed(1)} | ${percentile(ms(turns), 90).toFixed(1)} | ${median(ms(later)).toFixed(1)} | ${((stayed.length / later.length) * 100).toFixed(0)}% |`;
    };
    const promptTokens = byLoad[0].map((user) => user[TURNS - 1].promptTokens);
    const body = [
      `${SERVERS} gpu-server processes (sluice-chat, one instance each, prefix cache 64 MiB in 16-token blocks) behind the inference router (GpuTier) in this process; ${USERS} users each replay a ${TURNS}-turn conversation (shared system prompt, each turn adding the previous answer and a new question; the last turn's prompt is ${median(promptTokens)} tokens), all users at once, turns in order with a think time of 0–${THINK_MS} ms (seeded); streamed answers of 8 tokens; ${ROUNDS} alternating rounds, each with a fresh system prompt (\`npx tsx bench/prefix-affinity.ts\`).`,
      '',
      "| routing | prompt tokens from cache (per round) | turns 2–10 only | TTFT median, ms | TTFT p90, ms | TTFT median turns 2–10, ms | turns 2–10 on the previous turn's server |",
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      row('least loaded', byLoad),
      row(`prefix affinity (margin ${AFFINITY_MARGIN})`, byAffinity),
      '',
      `Turns 2–10 reuse their conversation's earlier prompt only on the server that served it, and the system prompt on any server that has seen it. By load alone, a turn returns to its conversation's server only when that server happens to be the least loaded at that moment (a user's own finished stream just left it, which favours it) — the last column shows how often; with affinity it returns unless that server is busier than the least-loaded by more than the margin (INFERENCE_GPU_AFFINITY_MARGIN), so almost always. On this shared 2-core machine the three servers compete for the same cores, so TTFT gains are smaller than the saved prefill suggests.`,
      '',
      loadNote(loadBefore),
    ].join('\n');
    console.log(body);
    recordResult('prefix-affinity', 'Issue 20: prefix-affinity routing, 20 users × 10 turns over 3 gpu-servers', body);
  } finally {
    tier?.close();
    await Promise.all(gpus.map((g) => stopGpuProcess(g)));
    rmSync(repository, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
