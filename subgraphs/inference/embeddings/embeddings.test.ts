/**
 * `embed` with token ids: decoded with the model's tokenizer (its config's
 * `tokenizer` parameter) and embedded, and billed, as the text they encode.
 * A real gpu-server runs in-process over sluice-embed (r50k_base), a variant
 * tokenizing with cl100k_base, and one whose config names no tokenizer;
 * billing is a fake that records reservations; Redis is the in-memory store.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { encode as encodeCl100k } from 'gpt-tokenizer/cjs/encoding/cl100k_base';
import { encode as encodeR50k } from 'gpt-tokenizer/cjs/encoding/r50k_base';
import type { GraphQLError } from 'graphql';
import type { ReserveRequest, Reservation } from '../../../lib/billing-client';
import { createLogger } from '../../../lib/log';
import { connectRedis } from '../../../lib/redis';
import { decodeUsageEvent, USAGE_EVENTS_STREAM } from '../../../lib/usage-events';
import { makeEmbedRepository } from '../../../gpu-server/testing/temp-repository';
import { startGpuServer, type GpuServer } from '../../../gpu-server/server';
import { Metering, type Caller, type Reserver } from '../billing/usage-billing';
import { UsagePublisher } from '../billing/usage-publisher';
import { GpuTier } from '../gpu-tier/gpu-tier';
import { ModelCatalog } from '../models/model-catalog';
import { EmbeddingBatcher } from './embedding-batcher';
import { embedInput, Embeddings } from './embeddings';

class RecordingBilling implements Reserver {
  readonly calls: Array<{ identityHeader: string; body: ReserveRequest }> = [];

  async reserve(identityHeader: string, body: ReserveRequest): Promise<Reservation> {
    this.calls.push({ identityHeader, body });
    return { reservationId: body.reservationId, amountMicros: 1, expiresAt: Date.now() + 60_000, state: 'held' };
  }
}

const log = createLogger({ service: 'token-embeddings-test' });
const MAX_TEXT_CHARS = 40;
let repository: string;
let gpu: GpuServer;
let tier: GpuTier;
let redis: Redis;
let billing: RecordingBilling;
let metering: Metering;
let embeddings: Embeddings;

beforeAll(async () => {
  repository = await makeEmbedRepository([{ name: 'sluice-embed' }, { name: 'embed-cl100k', parameters: { tokenizer: 'cl100k_base' } }, { name: 'embed-untold' }]);
  // The gpu-server's backend falls back to r50k_base, but nothing tells the subgraph so: it must not guess.
  const untold = path.join(repository, 'embed-untold', 'config.pbtxt');
  fs.writeFileSync(untold, fs.readFileSync(untold, 'utf8').replace(/^parameters \{ key: "tokenizer" .*\n/m, ''));
  gpu = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: log });
  tier = new GpuTier({ endpoints: [`127.0.0.1:${gpu.grpcPort}`], deadlineMs: 10_000, log });
  redis = connectRedis('memory://', log);
  billing = new RecordingBilling();
  metering = new Metering(billing, new UsagePublisher(redis, { log }), log);
  embeddings = new Embeddings(new ModelCatalog(tier, 60_000), new EmbeddingBatcher(tier, 1), { maxTexts: 4, maxTextChars: MAX_TEXT_CHARS }, new Map(), metering);
}, 60_000);

afterAll(async () => {
  tier?.close();
  redis?.disconnect();
  await gpu?.stop();
  if (repository) fs.rmSync(repository, { recursive: true, force: true });
});

function caller(): Caller {
  const sub = `user-${randomUUID()}`;
  return { identity: { sub, scopes: ['inference:invoke'], iat: 0, exp: 0 }, identityHeader: `v1.header-of-${sub}.signature` };
}

async function promptTokensBilled(who: Caller): Promise<number[]> {
  expect(await metering.drain(10_000)).toBe(true);
  const entries = await redis.xrange(USAGE_EVENTS_STREAM, '-', '+');
  return entries
    .map(([, fields]) => decodeUsageEvent(fields))
    .filter((e) => e.userId === who.identity.sub)
    .map((e) => e.promptTokens);
}

async function refusal(call: Promise<unknown>): Promise<{ message: string; extensions: Record<string, unknown> }> {
  const error = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as GraphQLError | undefined;
  if (!error) throw new Error('expected the call to be refused, but it succeeded');
  return { message: error.message, extensions: error.extensions };
}

const TEXTS = ['A river flows to the sea.', 'Café au lait, 日本'];

describe('embed(tokens:)', () => {
  it('gives each array of r50k ids the vector of the text they encode, and bills it as that text', async () => {
    const byText = caller();
    const byIds = caller();
    const fromTexts = await embeddings.embed(byText, TEXTS, 'sluice-embed');
    const fromIds = await embeddings.embedTokens(
      byIds,
      TEXTS.map((t) => encodeR50k(t)),
      'sluice-embed',
    );
    expect(fromIds.map((e) => e.index)).toEqual([0, 1]);
    expect(fromIds.map((e) => e.vector)).toEqual(fromTexts.map((e) => e.vector));
    expect(await promptTokensBilled(byIds)).toEqual(await promptTokensBilled(byText));
    const reserved = (who: Caller) => billing.calls.filter((c) => c.identityHeader === who.identityHeader).map((c) => c.body.promptTokens);
    expect(reserved(byIds)).toEqual(reserved(byText));
  });

  it('reads ids in the tokenizer the model names: cl100k ids on a cl100k model', async () => {
    const text = 'Tokenizers differ';
    const [fromText] = await embeddings.embed(caller(), [text], 'embed-cl100k');
    const [fromIds] = await embeddings.embedTokens(caller(), [encodeCl100k(text)], 'embed-cl100k');
    const [misread] = await embeddings.embedTokens(caller(), [encodeCl100k(text)], 'sluice-embed');
    expect(fromIds.vector).toEqual(fromText.vector);
    expect(misread.vector).not.toEqual(fromText.vector);
  });

  it('refuses an id that is not a token of the model tokenizer, naming its index', async () => {
    expect(await refusal(embeddings.embedTokens(caller(), [[64], [64, 7850, 50257]], 'sluice-embed'))).toEqual({
      message: 'embed expects token ids of r50k_base (the tokenizer of "sluice-embed": ids from 0 to 50256), but tokens[1][2] is 50257, which is not one of its tokens',
      extensions: { code: 'BAD_USER_INPUT', field: 'tokens[1][2]' },
    });
    // cl100k_base has unused ids below its largest one.
    expect((await refusal(embeddings.embedTokens(caller(), [[100261]], 'embed-cl100k'))).extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'tokens[0][0]' });
  });

  it('refuses token ids for a model whose config names no tokenizer', async () => {
    expect(await refusal(embeddings.embedTokens(caller(), [[64]], 'embed-untold'))).toEqual({
      message: 'model "embed-untold" does not take token ids: its config names no tokenizer, and embed decodes ids of r50k_base, p50k_base, cl100k_base, o200k_base only; send texts instead',
      extensions: { code: 'BAD_USER_INPUT', field: 'tokens' },
    });
    // Its texts are still embedded.
    expect(await embeddings.embed(caller(), ['x'], 'embed-untold')).toHaveLength(1);
  });

  it('holds the decoded texts to the limits texts have, and bills nothing refused', async () => {
    const who = caller();
    expect(await refusal(embeddings.embedTokens(who, [], 'sluice-embed'))).toMatchObject({ message: 'embed expects 1 to 4 tokens, but got 0', extensions: { field: 'tokens' } });
    const long = 'a'.repeat(MAX_TEXT_CHARS + 1);
    expect(await refusal(embeddings.embedTokens(who, [[64], encodeR50k(long)], 'sluice-embed'))).toEqual({
      message: `embed expects each text to be at most ${MAX_TEXT_CHARS} characters, but the text of tokens[1] has ${MAX_TEXT_CHARS + 1}`,
      extensions: { code: 'BAD_USER_INPUT', field: 'tokens[1]' },
    });
    expect(billing.calls.filter((c) => c.identityHeader === who.identityHeader)).toEqual([]);
  });
});

describe('embedInput', () => {
  it('takes exactly one of texts and tokens, naming the argument otherwise', () => {
    expect(embedInput({ texts: ['a'], tokens: null })).toEqual({ texts: ['a'] });
    expect(embedInput({ tokens: [[1]] })).toEqual({ tokens: [[1]] });
    expect(() => embedInput({})).toThrow('embed expects exactly one of texts (strings) or tokens (arrays of token ids), but got neither');
    expect(() => embedInput({ texts: ['a'], tokens: [[1]] })).toThrow(
      expect.objectContaining({ message: expect.stringContaining('but got both'), extensions: { code: 'BAD_USER_INPUT', field: 'tokens' } }),
    );
  });
});
