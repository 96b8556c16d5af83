/**
 * What zero trust inside costs (issue 15): the same calls with and without
 * the new checks, side by side in one run, rounds alternating, medians.
 *
 * - gpu-server, gRPC: a server with every category but health restricted (the
 *   client sends the key; the check is a server interceptor and a
 *   constant-time comparison) vs one with no restriction, on ModelMetadata
 *   (the cheapest restricted call: what is left is transport plus the check)
 *   and on ModelInfer at batch 1 (a real embedding).
 * - gpu-server, HTTP: GET /v2/models/{m} with the restricted header vs open.
 * - Redis: one redis-server with the ACL file of `npm start`; SET+GET pairs as
 *   the billing ACL user (key patterns and command checks) vs as the default
 *   user (all keys, all commands), 50 in flight.
 *
 *   npx tsx bench/perimeter-cost.ts [rounds, default 5] [calls per round, default 2000]
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Redis from 'ioredis';
import { parseRestrictions } from '../gpu-server/access/restrictions';
import { startGpuServer, type GpuServer } from '../gpu-server/server';
import { makeEmbedRepository } from '../gpu-server/testing/temp-repository';
import { createLogger } from '../lib/log';
import { redisAclFile, redisUrlAs, REDIS_SERVICE_USERS } from '../lib/redis-acl';
import { encodeBytesTensor } from '../protocol/triton/bytes-tensor';
import { startRedisServer } from '../scripts/redis-server';
import { GPU_RESTRICTED_CATEGORIES } from '../scripts/stack';
import { TritonClient } from '../subgraphs/inference/gpu-tier/triton-client';
import { loadNote, recordResult } from './results';

const ROUNDS = Number(process.argv[2] ?? 5);
const PER_ROUND = Number(process.argv[3] ?? 2000);
const MODEL = 'sluice-embed';
const KEY = `sluice-gpu-key=${randomBytes(24).toString('base64url')}`;
const REDIS_IN_FLIGHT = 50;

/** Mean µs per call of `calls` sequential calls. */
async function sequential(calls: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await fn(i);
  return Number(process.hrtime.bigint() - started) / 1e3 / calls;
}

/** Operations per second of `calls` calls with `inFlight` at a time. */
async function concurrent(calls: number, inFlight: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < calls) await fn(next++);
    }),
  );
  return calls / (Number(process.hrtime.bigint() - started) / 1e9);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs `with` and `without` in alternating rounds (which goes first alternates too); their figures per round. */
async function sideBySide(measure: (which: 'with' | 'without') => Promise<number>): Promise<{ with: number[]; without: number[] }> {
  const result = { with: [] as number[], without: [] as number[] };
  await measure('with'); // warm-up, both
  await measure('without');
  for (let round = 0; round < ROUNDS; round++) {
    for (const which of round % 2 ? (['without', 'with'] as const) : (['with', 'without'] as const)) result[which].push(await measure(which));
  }
  return result;
}

const fmt = (n: number, digits = 0) => n.toFixed(digits);
const list = (values: number[], digits = 0) => values.map((v) => fmt(v, digits)).join(', ');

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0];
  const logger = createLogger({ bench: 'perimeter-cost' });
  const repository = await makeEmbedRepository([{ name: MODEL }]);
  const restricted = parseRestrictions([`${GPU_RESTRICTED_CATEGORIES}:${KEY}`], 'grpc', 'bench');
  const restrictedHttp = parseRestrictions([`${GPU_RESTRICTED_CATEGORIES}:${KEY}`], 'http', 'bench');
  const servers: GpuServer[] = [];
  const clients: TritonClient[] = [];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-cost-'));
  const redisClients: Redis[] = [];
  try {
    const open = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger });
    servers.push(open);
    const guarded = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger, grpcRestrictions: restricted, httpRestrictions: restrictedHttp });
    servers.push(guarded);
    const client = { with: new TritonClient(`127.0.0.1:${guarded.grpcPort}`, 30_000, KEY), without: new TritonClient(`127.0.0.1:${open.grpcPort}`, 30_000, '') };
    clients.push(client.with, client.without);
    const httpBase = { with: `http://127.0.0.1:${guarded.httpPort}`, without: `http://127.0.0.1:${open.httpPort}` };
    const [header, value] = [KEY.slice(0, KEY.indexOf('=')), KEY.slice(KEY.indexOf('=') + 1)];
    const texts = Array.from({ length: 64 }, (_, i) => `a short text to embed, number ${i}, about rivers and mountains`);
    const infer = (which: 'with' | 'without', i: number) =>
      client[which].modelInfer({ model_name: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1] }], raw_input_contents: [encodeBytesTensor([texts[i % texts.length]])] });

    const metadata = await sideBySide((which) => sequential(PER_ROUND, () => client[which].modelConfig(MODEL)));
    const inference = await sideBySide((which) => sequential(Math.ceil(PER_ROUND / 4), (i) => infer(which, i)));
    const http = await sideBySide((which) =>
      sequential(PER_ROUND, async () => (await fetch(`${httpBase[which]}/v2/models/${MODEL}`, { headers: which === 'with' ? { [header]: value } : {} })).arrayBuffer()),
    );

    const passwords = Object.fromEntries(['default', ...REDIS_SERVICE_USERS].map((user) => [user, randomBytes(24).toString('base64url')])) as Parameters<typeof redisAclFile>[0];
    const redisServer = await startRedisServer(path.join(dataDir, 'redis'), undefined, undefined, { file: redisAclFile(passwords), defaultPassword: passwords.default });
    const redis = {
      with: new Redis(redisUrlAs(redisServer.url, 'billing', passwords.billing), { enableAutoPipelining: true }),
      without: new Redis(redisServer.url, { enableAutoPipelining: true }),
    };
    redisClients.push(redis.with, redis.without);
    let redisOps: { with: number[]; without: number[] };
    try {
      redisOps = await sideBySide((which) =>
        concurrent(PER_ROUND * 5, REDIS_IN_FLIGHT, async (i) => {
          const key = `billing:bench:${which}:${i % 1000}`;
          await redis[which].set(key, String(i));
          await redis[which].get(key);
        }),
      );
    } finally {
      for (const c of redisClients) c.disconnect();
      await redisServer.stop();
    }

    const ratio = (r: { with: number[]; without: number[] }) => median(r.with.map((w, i) => w / r.without[i]));
    const rows = [
      ['gpu-server gRPC ModelConfig (restricted category), µs per call', metadata, 0],
      ['gpu-server gRPC ModelInfer, batch 1 embedding, µs per call', inference, 0],
      ['gpu-server HTTP GET /v2/models/{m} (restricted category), µs per call', http, 0],
      ['Redis SET+GET pairs, billing ACL user vs default user, pairs/s', redisOps, 0],
    ] as const;
    const table = rows.map(
      ([label, r, digits]) => `| ${label} | ${fmt(median(r.with), digits)} (${list(r.with, digits)}) | ${fmt(median(r.without), digits)} (${list(r.without, digits)}) | ${fmt(ratio(r), 3)} |`,
    );
    recordResult(
      'perimeter-cost',
      'Issue 15: the cost of zero trust inside (restricted protocols, Redis ACL users)',
      `${ROUNDS} alternating rounds of ${PER_ROUND} calls (ModelInfer: ${Math.ceil(PER_ROUND / 4)}; Redis: ${PER_ROUND * 5} pairs, ${REDIS_IN_FLIGHT} in flight) per side, one process, two gpu-servers on the same model repository and one redis-server with \`npm start\`'s ACL file (\`npx tsx bench/perimeter-cost.ts\`). "With" is the restricted gpu-server called with its key (every category but health restricted, as \`npm start\` runs it) or the billing ACL user; "without" is an unrestricted gpu-server or Redis's default user.

| calls | with: median (rounds) | without: median (rounds) | with / without (median of per-round ratios) |
| --- | ---: | ---: | ---: |
${table.join('\n')}

A ratio within a few per cent of 1 in either direction is noise on this shared machine: the restricted-category check is one map look-up and one constant-time comparison of a precomputed buffer per call, and Redis checks ACL rules in memory.

${loadNote(loadBefore)}`,
    );
    console.log(table.join('\n'));
  } finally {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.stop()));
    fs.rmSync(repository, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
