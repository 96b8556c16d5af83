/**
 * The routing rule and the tier's choice of endpoint, without servers: the
 * endpoints point at closed ports and the test sets what a poll would have
 * learned (models, reachability, load) by hand, after the first poll has
 * failed and with no further poll due during the test.
 */
import { ErrorCode } from '../../../lib/errors';
import { createLogger } from '../../../lib/log';
import { freePort } from '../../../scripts/free-port';
import { endpointMetrics, metricsRoute } from './endpoint-metrics';
import type { EndpointModel } from './gpu-endpoint';
import { gpuError } from './gpu-errors';
import { GpuTier } from './gpu-tier';
import { AffinityTable, conversationKey } from './prefix-affinity';
import { leastLoaded, NoEndpointError, withAffinity } from './router';

const READY: EndpointModel = { version: '1', state: 'READY', reason: '' };

describe('leastLoaded', () => {
  it('picks the smallest load, and on a tie the first one from `start` on', () => {
    expect(leastLoaded([3, 1, 2], (x) => x, 0)).toBe(1);
    expect(leastLoaded([1, 1, 1], (x) => x, 0)).toBe(0);
    expect(leastLoaded([1, 1, 1], (x) => x, 2)).toBe(2);
    expect(leastLoaded([0, 5, 0], (x) => x, 1)).toBe(2);
    expect(leastLoaded([], (x: number) => x, 0)).toBe(-1);
  });
});

describe('withAffinity', () => {
  it('keeps the preferred candidate while it is within the margin of the least loaded, else takes the least loaded', () => {
    const loads = [5, 1, 3];
    const load = (i: number) => loads[i];
    expect(withAffinity([0, 1, 2], load, 0, 2, 2)).toBe(2); // 3 - 1 = 2 ≤ 2
    expect(withAffinity([0, 1, 2], load, 0, 0, 2)).toBe(1); // 5 - 1 = 4 > 2
    expect(withAffinity([0, 1, 2], load, 0, 0, 4)).toBe(0);
    expect(withAffinity([0, 1, 2], load, 0, undefined, 4)).toBe(1);
    expect(withAffinity([0, 1, 2], load, 0, 7, 4)).toBe(1); // not a candidate (gone, or the model is not ready there)
    expect(withAffinity([], load, 0, 0, 4)).toBe(-1);
  });
});

describe('conversationKey and AffinityTable', () => {
  it('gives every turn of a conversation one key, distinct per user, model and conversation', () => {
    const turn1 = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ];
    const turn2 = [...turn1, { role: 'assistant', content: 'Hello.' }, { role: 'user', content: 'And then?' }];
    expect(conversationKey('u1', 'm', turn2)).toBe(conversationKey('u1', 'm', turn1));
    expect(conversationKey('u2', 'm', turn1)).not.toBe(conversationKey('u1', 'm', turn1));
    expect(conversationKey('u1', 'n', turn1)).not.toBe(conversationKey('u1', 'm', turn1));
    expect(conversationKey('u1', 'm', [turn1[0], { role: 'user', content: 'Ho' }])).not.toBe(conversationKey('u1', 'm', turn1));
  });

  it('keeps the most recently used keys up to its capacity', () => {
    const table = new AffinityTable(2);
    table.set('a', 'x');
    table.set('b', 'y');
    table.set('a', 'z'); // a is now the most recent
    table.set('c', 'x');
    expect([table.get('a'), table.get('b'), table.get('c'), table.size]).toEqual(['z', undefined, 'x', 2]);
  });
});

describe('GpuTier.pick', () => {
  let tier: GpuTier;
  let addresses: string[];

  beforeEach(async () => {
    addresses = await Promise.all([0, 1, 2].map(async () => `127.0.0.1:${await freePort()}`));
    tier = new GpuTier({ endpoints: addresses, deadlineMs: 1_000, log: createLogger({ service: 'router-test' }), probeIntervalMs: 60_000, failureThreshold: 1, cooldownMs: 60_000 });
    await tier.isReady(); // the first poll fails: nothing listens
  });
  afterEach(() => tier.close());

  /** Endpoint i serves `models` (name → versions) and answers. */
  function serve(i: number, models: Record<string, EndpointModel[]>) {
    const e = tier.endpoints[i];
    e.models = new Map(Object.entries(models));
    e.reachable = true;
    return e;
  }

  it('before any endpoint answered, says the GPU tier is unavailable', () => {
    expect(() => tier.pick('m')).toThrow(expect.objectContaining({ code: ErrorCode.GpuUnavailable, message: expect.stringMatching(/have not answered yet/) }));
  });

  it('routes only to endpoints where the model is ready, and round-robins them while idle', () => {
    serve(0, { chat: [READY], embed: [READY] });
    serve(1, { embed: [READY] });
    serve(2, { chat: [READY], embed: [READY] });
    const chats = Array.from({ length: 6 }, () => tier.pick('chat').address);
    expect(new Set(chats)).toEqual(new Set([addresses[0], addresses[2]]));
    expect(chats.filter((a) => a === addresses[0])).toHaveLength(3);
    const embeds = Array.from({ length: 9 }, () => tier.pick('embed').address);
    for (const a of addresses) expect(embeds.filter((x) => x === a)).toHaveLength(3);
  });

  it('picks the endpoint with the fewest requests of ours plus its mean queue for the model', () => {
    const [a, b, c] = [0, 1, 2].map((i) => serve(i, { m: [READY] }));
    a.begin(4);
    b.begin(1);
    c.begin(1);
    c.queued.set('m', 2.4); // counted as 2
    expect(tier.pick('m')).toBe(b);
    b.begin(4); // b: 5, a: 4, c: 3
    expect(tier.pick('m')).toBe(c);
    c.queued.set('other', 100); // another model's queue does not count
    c.queued.set('m', 0);
    expect(tier.pick('m')).toBe(c);
  });

  it('sends a conversation back to the endpoint that served it, until that one is busier than the margin allows', () => {
    const [a, b, c] = [0, 1, 2].map((i) => serve(i, { m: [READY] }));
    const first = tier.pick('m', '', 'conversation');
    // Idle, the tier would rotate; the key keeps the conversation where its prompt is cached.
    for (let i = 0; i < 5; i++) expect(tier.pick('m', '', 'conversation')).toBe(first);
    const others = [a, b, c].filter((e) => e !== first);
    first.begin(4); // 4 busier than the idle ones: the default margin still allows it
    expect(tier.pick('m', '', 'conversation')).toBe(first);
    first.begin(1); // 5 busier: least loaded wins, and the conversation moves there
    const moved = tier.pick('m', '', 'conversation');
    expect(others).toContain(moved);
    first.end(5, true);
    expect(tier.pick('m', '', 'conversation')).toBe(moved);
    // Another conversation is routed by load alone.
    moved.begin(1);
    expect(tier.pick('m', '', 'another')).not.toBe(moved);
  });

  it('skips endpoints that do not answer or whose circuit is open, and lets one trial call through a half-open one', () => {
    const [a, b] = [0, 1].map((i) => serve(i, { m: [READY] }));
    tier.endpoints[2].reachable = false;
    a.reachable = false;
    expect(tier.pick('m')).toBe(b);
    b.breaker.observe(false); // threshold 1: open
    expect(() => tier.pick('m')).toThrow(NoEndpointError);
    // A half-open circuit: pretend the cooldown has passed.
    Object.assign(b.breaker, { now: () => Date.now() + 120_000 });
    expect(b.breaker.state).toBe('half-open');
    expect(tier.pick('m')).toBe(b);
    expect(() => tier.pick('m')).toThrow(/has its one half-open trial call in flight/);
  });

  it('a model no endpoint lists is MODEL_NOT_FOUND; listed but ready nowhere is MODEL_NOT_READY with retryAfter', () => {
    serve(0, { m: [{ version: '1', state: 'LOADING', reason: 'loading weights' }] });
    serve(1, { m: [READY] }).reachable = false;
    serve(2, { other: [READY] });
    let error: unknown;
    try {
      tier.pick('nope');
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: ErrorCode.ModelNotFound, message: expect.stringContaining('"nope" is served by none of the GPU endpoints') });
    expect(gpuError(error, 'nope').extensions).toMatchObject({ code: 'MODEL_NOT_FOUND', model: 'nope' });
    try {
      tier.pick('m');
    } catch (e) {
      error = e;
    }
    expect((error as Error).message).toBe(
      `model "m" is ready on no GPU endpoint that can take the call (${addresses[0]} has it v1 LOADING (loading weights); ${addresses[1]} does not answer); retry in 60 s`,
    );
    expect(gpuError(error, 'm').extensions).toEqual({ code: 'MODEL_NOT_READY', model: 'm', retryAfter: 60 });
  });

  it('routes a pinned version only to endpoints that have that version ready', () => {
    serve(0, { m: [{ ...READY, version: '1' }] });
    const b = serve(1, { m: [{ ...READY, version: '2' }] });
    serve(2, {
      m: [
        { ...READY, version: '1' },
        { version: '2', state: 'UNAVAILABLE', reason: 'unloaded' },
      ],
    });
    for (let i = 0; i < 4; i++) expect(tier.pick('m', '2')).toBe(b);
  });

  it('describes each endpoint of a model for Model.endpoints, and in Prometheus text', async () => {
    const a = serve(0, { m: [READY] });
    serve(1, { m: [READY] }).reachable = false;
    a.begin(3);
    a.queued.set('m', 1.5);
    a.breaker.observe(false);
    expect(tier.endpointsOf('m')).toEqual([
      { address: addresses[0], ready: false, state: 'READY', inFlight: 3, queued: 1.5, breaker: 'OPEN' },
      { address: addresses[1], ready: false, state: 'UNAVAILABLE', inFlight: 0, queued: 0, breaker: 'CLOSED' },
    ]);
    a.end(3, true);
    const text = endpointMetrics(tier);
    expect(text).toContain(`sluice_gpu_endpoint_requests_total{endpoint="${addresses[0]}"} 1`);
    expect(text).toContain(`sluice_gpu_endpoint_failures_total{endpoint="${addresses[0]}"} 1`);
    expect(text).toContain(`sluice_gpu_endpoint_in_flight{endpoint="${addresses[0]}"} 0`);
    expect(text).toContain(`sluice_gpu_endpoint_queued{endpoint="${addresses[0]}",model="m"} 1.5`);
    expect(text).toContain(`sluice_gpu_endpoint_up{endpoint="${addresses[1]}"} 0`);
    expect(text).toContain(`sluice_gpu_endpoint_breaker_state{endpoint="${addresses[0]}"} 2`);
    expect(text).toContain('# TYPE sluice_gpu_endpoint_requests_total counter');

    const written: { status?: number; body?: string } = {};
    const res = {
      writeHead(status: number) {
        written.status = status;
        return this;
      },
      end(body?: string) {
        written.body = body;
      },
    };
    const route = metricsRoute(tier);
    expect(route({ url: '/graphql', method: 'POST' } as never, res as never)).toBe(false);
    expect(route({ url: '/metrics', method: 'GET' } as never, res as never)).toBe(true);
    expect(written).toEqual({ status: 200, body: endpointMetrics(tier) });
  });

  it('takes a new endpoint list: keeps known endpoints, adds new ones, retires dropped ones', async () => {
    const kept = serve(1, { m: [READY] });
    const extra = `127.0.0.1:${await freePort()}`;
    tier.setEndpoints([addresses[1], extra]);
    expect(tier.endpoints.map((e) => e.address)).toEqual([addresses[1], extra]);
    expect(tier.endpoints[0]).toBe(kept);
    expect(tier.pick('m')).toBe(kept);
  });
});
