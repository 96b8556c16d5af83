import { ManualClock } from '../testing/manual-clock';
import { invalidArgument } from './errors';
import { RowFailures, type ModelRunner } from './runner';
import { DEFAULT_QUEUE_POLICY, Scheduler, type SchedulerOptions } from './scheduler';
import { StatisticsRecorder } from './statistics';
import type { Tensor } from './tensor';

/** A runner that doubles FP32 inputs and records each batch it saw. */
function fakeRunner(options: { fail?: boolean } = {}) {
  const batches: number[][] = [];
  const runner: ModelRunner = {
    async execute(inputs) {
      const x = inputs.get('x')!;
      batches.push(x.shape);
      if (options.fail) throw new Error('boom');
      const values = new Float32Array(x.data.buffer.slice(x.data.byteOffset, x.data.byteOffset + x.data.byteLength)).map((v) => v * 2);
      return new Map([['y', { name: 'y', datatype: 'FP32', shape: x.shape, data: Buffer.from(values.buffer) } as Tensor]]);
    },
    close: async () => undefined,
  };
  return { runner, batches };
}

const tensor = (values: number[], width = 1): Tensor => ({
  name: 'x',
  datatype: 'FP32',
  shape: [values.length / width, width],
  data: Buffer.from(Float32Array.from(values).buffer),
});
const read = (t: Tensor) => [...new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength))];
const request = (values: number[], width = 1) => ({ inputs: new Map([['x', tensor(values, width)]]), batchSize: values.length / width });

describe('Scheduler', () => {
  it('fails only the requests whose rows the runner reports failed (RowFailures), not their batch-mates', async () => {
    const runner: ModelRunner = {
      async execute(inputs) {
        const x = inputs.get('x')!;
        // Row 2 (the second row of the second request) is bad; the others are doubled.
        const values = new Float32Array(x.data.buffer.slice(x.data.byteOffset, x.data.byteOffset + x.data.byteLength)).map((v) => v * 2);
        const outputs = new Map([['y', { name: 'y', datatype: 'FP32', shape: x.shape, data: Buffer.from(values.buffer) } as Tensor]]);
        throw new RowFailures(outputs, new Map([[2, invalidArgument('row 2 is bad')]]));
      },
      close: async () => undefined,
    };
    const stats = new StatisticsRecorder('m', '1');
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats, maxBatchSize: 8, dynamicBatching: true });
    const results = await Promise.allSettled([[1], [2, 3], [4]].map((v) => scheduler.schedule(request(v))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(read((results[0] as PromiseFulfilledResult<Map<string, Tensor>>).value.get('y')!)).toEqual([2]);
    expect(read((results[2] as PromiseFulfilledResult<Map<string, Tensor>>).value.get('y')!)).toEqual([8]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'row 2 is bad' });
    const snapshot = stats.snapshot();
    expect([snapshot.inference_stats.success.count, snapshot.inference_stats.fail.count, snapshot.execution_count]).toEqual([2, 1, 1]);
  });

  it('combines requests that arrive together into one execution and splits the results back', async () => {
    const { runner, batches } = fakeRunner();
    const stats = new StatisticsRecorder('m', '1');
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats, maxBatchSize: 8, dynamicBatching: true });
    const results = await Promise.all([[1], [2, 3], [4]].map((v) => scheduler.schedule(request(v))));
    expect(batches).toEqual([[4, 1]]);
    expect(results.map((r) => read(r.get('y')!))).toEqual([[2], [4, 6], [8]]);
    expect(results.map((r) => r.get('y')!.shape)).toEqual([
      [1, 1],
      [2, 1],
      [1, 1],
    ]);
    const s = stats.snapshot();
    expect(s).toMatchObject({ inference_count: 4, execution_count: 1, inference_stats: { success: { count: 3 } } });
    expect(s.batch_stats.map((b) => b.batch_size)).toEqual([4]);
  });

  it('never exceeds max_batch_size', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 4, dynamicBatching: true });
    await Promise.all([1, 2, 3, 4, 5, 6].map((v) => scheduler.schedule(request([v]))));
    expect(batches).toEqual([
      [4, 1],
      [2, 1],
    ]);
  });

  it('does not mix requests whose non-batch shapes differ', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 8, dynamicBatching: true });
    const [a, b, c] = await Promise.all([scheduler.schedule(request([1])), scheduler.schedule(request([2, 3], 2)), scheduler.schedule(request([4]))]);
    expect(batches).toEqual([
      [2, 1],
      [1, 2],
    ]);
    expect([read(a.get('y')!), read(b.get('y')!), read(c.get('y')!)]).toEqual([[2], [4, 6], [8]]);
  });

  it('runs each request alone without dynamic batching', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 8, dynamicBatching: false });
    await Promise.all([[1], [2], [3]].map((v) => scheduler.schedule(request(v))));
    expect(batches).toEqual([
      [1, 1],
      [1, 1],
      [1, 1],
    ]);
  });

  it('rejects every request of a failed batch and counts the failures', async () => {
    const { runner } = fakeRunner({ fail: true });
    const stats = new StatisticsRecorder('m', '1');
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats, maxBatchSize: 8, dynamicBatching: true });
    const results = await Promise.allSettled([[1], [2]].map((v) => scheduler.schedule(request(v))));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'INTERNAL', message: 'model execution failed: boom' });
    expect(stats.snapshot()).toMatchObject({ execution_count: 0, inference_count: 0, inference_stats: { fail: { count: 2 }, success: { count: 0 } } });
  });

  it('runs as many batches at once as it has runners (instances), each on an idle one', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const started: string[] = [];
    const gated = (name: string): ModelRunner => ({
      async execute(inputs) {
        started.push(name);
        await gate;
        return new Map([['y', inputs.get('x')!]]);
      },
      close: async () => undefined,
    });
    const scheduler = new Scheduler({ model: 'm', runners: [gated('a'), gated('b')], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 1, dynamicBatching: true });
    const results = [1, 2, 3].map((v) => scheduler.schedule(request([v])));
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a', 'b']);
    release();
    await Promise.all(results);
    expect(started).toHaveLength(3);
  });

  it('drains queued work, then refuses new requests with UNAVAILABLE', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ model: 'm', runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 8, dynamicBatching: true });
    const pending = scheduler.schedule(request([1]));
    await scheduler.drain();
    expect(read((await pending).get('y')!)).toEqual([2]);
    expect(batches).toHaveLength(1);
    await expect(scheduler.schedule(request([1]))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});

/** A runner that holds each execution until released, recording the values of each batch. */
function heldRunner() {
  const batches: number[][] = [];
  const releases: Array<() => void> = [];
  const runner: ModelRunner = {
    async execute(inputs) {
      const x = inputs.get('x')!;
      batches.push(read(x));
      await new Promise<void>((resolve) => releases.push(resolve));
      return new Map([['y', { ...x, name: 'y' }]]);
    },
    close: async () => undefined,
  };
  /** Lets the oldest held execution finish and the scheduler react. */
  const releaseNext = async () => {
    releases.shift()?.();
    await flush();
  };
  return { runner, batches, releaseNext };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));
const US = 1000;

describe('Scheduler with controlled time', () => {
  function scheduler(runner: ModelRunner, options: Partial<SchedulerOptions> = {}) {
    const clock = new ManualClock();
    const stats = new StatisticsRecorder('m', '1');
    const s = new Scheduler({ model: 'm', runners: [runner], stats, maxBatchSize: 8, dynamicBatching: true, clock, ...options });
    return { s, clock, stats };
  }

  it('waits max_queue_delay_microseconds from the first request, then sends what is queued', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, { maxQueueDelayMicroseconds: 100 });
    const results = [1, 2, 3].map((v) => s.schedule(request([v])));
    await flush();
    clock.advance(99 * US);
    await flush();
    expect(batches).toEqual([]);
    expect(s.pendingCount).toBe(3);
    clock.advance(1 * US);
    await flush();
    expect(batches).toEqual([[1, 2, 3]]);
    await releaseNext();
    expect((await Promise.all(results)).map((r) => read(r.get('y')!))).toEqual([[1], [2], [3]]);
  });

  it('a delay of 0 waits one event-loop turn, so requests that arrive together share a batch', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner);
    const results = [1, 2].map((v) => s.schedule(request([v])));
    expect(batches).toEqual([]);
    clock.advance(0);
    await flush();
    expect(batches).toEqual([[1, 2]]);
    await releaseNext();
    await Promise.all(results);
  });

  it('sends a preferred batch size at once, and the rest after the delay', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, { preferredBatchSizes: [2, 4], maxQueueDelayMicroseconds: 1000 });
    const first = s.schedule(request([1]));
    await flush();
    expect(batches).toEqual([]); // 1 is not a preferred size: wait
    const second = s.schedule(request([2]));
    await flush();
    expect(batches).toEqual([[1, 2]]); // 2 is: go now
    const rest = [3, 4, 5, 6, 7].map((v) => s.schedule(request([v])));
    await releaseNext();
    expect(batches).toEqual([
      [1, 2],
      [3, 4, 5, 6],
    ]); // of 5 queued, the largest preferred prefix (4)
    await releaseNext();
    expect(batches).toHaveLength(2); // 1 left, not preferred, delay not over
    clock.advance(1000 * US);
    await flush();
    expect(batches).toEqual([[1, 2], [3, 4, 5, 6], [7]]);
    await releaseNext();
    await Promise.all([first, second, ...rest]);
  });

  it('sends without waiting once the queued samples reach max_batch_size', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s } = scheduler(runner, { maxBatchSize: 4, maxQueueDelayMicroseconds: 1_000_000 });
    const results = [1, 2, 3, 4].map((v) => s.schedule(request([v])));
    await flush();
    expect(batches).toEqual([[1, 2, 3, 4]]);
    await releaseNext();
    await Promise.all(results);
  });

  it('serves priority level 1 first; priority 0 is the default level', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, { maxBatchSize: 1, priorityLevels: 2, defaultPriorityLevel: 2 });
    const busy = s.schedule(request([0]));
    clock.advance(0);
    await flush();
    const queued = [s.schedule({ ...request([1]), priority: 0 }), s.schedule({ ...request([2]), priority: 2 }), s.schedule({ ...request([3]), priority: 1 })];
    for (let i = 0; i < 4; i++) await releaseNext();
    expect(batches).toEqual([[0], [3], [1], [2]]);
    await Promise.all([busy, ...queued]);
  });

  it('serves a priority beyond priority_levels at the default level, as Triton does, and refuses a malformed one', async () => {
    const { runner, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, { priorityLevels: 2 });
    const beyond = s.schedule({ ...request([1]), priority: 3 });
    clock.advance(0);
    await flush();
    await releaseNext();
    await expect(beyond).resolves.toBeDefined();
    await expect(scheduler(runner).s.schedule({ ...request([1]), priority: -1 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^invalid priority for model 'm': expected a non-negative integer .*, got -1$/),
    });
  });

  it('refuses a request with RESOURCE_EXHAUSTED when its queue is full, and counts it as failed', async () => {
    const { runner, releaseNext } = heldRunner();
    const policy = { ...DEFAULT_QUEUE_POLICY, maxQueueSize: 2 };
    const { s, clock, stats } = scheduler(runner, { maxBatchSize: 1, defaultQueuePolicy: policy });
    const running = s.schedule(request([0]));
    clock.advance(0);
    await flush();
    const queued = [s.schedule(request([1])), s.schedule(request([2]))];
    await expect(s.schedule(request([3]))).rejects.toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      message: "Exceeds maximum queue size: model 'm' queues at most 2 request(s), got one more while 2 wait",
    });
    expect(stats.snapshot().inference_stats.fail.count).toBe(1);
    for (let i = 0; i < 3; i++) await releaseNext();
    await Promise.all([running, ...queued]);
  });

  it('applies the queue policy of the request priority level', async () => {
    const { runner, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, {
      maxBatchSize: 1,
      priorityLevels: 2,
      priorityQueuePolicy: new Map([[2, { ...DEFAULT_QUEUE_POLICY, maxQueueSize: 1 }]]),
    });
    const running = s.schedule(request([0]));
    clock.advance(0);
    await flush();
    const ok = [s.schedule({ ...request([1]), priority: 2 }), s.schedule({ ...request([2]), priority: 1 }), s.schedule({ ...request([3]), priority: 1 })];
    await expect(s.schedule({ ...request([4]), priority: 2 })).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: expect.stringContaining('at priority level 2') });
    for (let i = 0; i < 4; i++) await releaseNext();
    await Promise.all([running, ...ok]);
  });

  it('timeout_action REJECT: a request still queued at its timeout is refused with UNAVAILABLE', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const policy = { ...DEFAULT_QUEUE_POLICY, defaultTimeoutMicroseconds: 500, allowTimeoutOverride: true };
    const { s, clock, stats } = scheduler(runner, { maxBatchSize: 1, defaultQueuePolicy: policy });
    const running = s.schedule(request([0]));
    clock.advance(0);
    await flush();
    const byDefault = s.schedule(request([1]));
    const shorter = s.schedule({ ...request([2]), timeoutMicroseconds: 100 });
    const longer = s.schedule({ ...request([3]), timeoutMicroseconds: 5000 }); // may only shorten: 500 applies
    const settled = Promise.allSettled([byDefault, shorter, longer]);
    clock.advance(100 * US);
    await flush();
    await expect(shorter).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^Request timeout expired: model 'm' waited 100 µs/) });
    expect(s.pendingCount).toBe(2);
    clock.advance(400 * US);
    expect((await settled).map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    await releaseNext();
    await running;
    expect(batches).toEqual([[0]]);
    expect(stats.snapshot().inference_stats).toMatchObject({ success: { count: 1 }, fail: { count: 3 } });
  });

  it('ignores a request timeout when the policy does not allow overrides', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, { maxBatchSize: 1 });
    const running = s.schedule(request([0]));
    clock.advance(0);
    await flush();
    const queued = s.schedule({ ...request([1]), timeoutMicroseconds: 10 });
    clock.advance(1000 * US);
    await releaseNext();
    await releaseNext();
    await Promise.all([running, queued]);
    expect(batches).toEqual([[0], [1]]);
  });

  it('timeout_action DELAY: a timed-out request goes behind the others of its level and still runs', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const policy = { ...DEFAULT_QUEUE_POLICY, allowTimeoutOverride: true, timeoutAction: 'DELAY' as const };
    const { s, clock } = scheduler(runner, { maxBatchSize: 1, defaultQueuePolicy: policy });
    const running = s.schedule(request([0]));
    clock.advance(0);
    await flush();
    const late = s.schedule({ ...request([1]), timeoutMicroseconds: 100 });
    const others = [s.schedule(request([2])), s.schedule(request([3]))];
    clock.advance(200 * US);
    for (let i = 0; i < 4; i++) await releaseNext();
    await Promise.all([running, late, ...others]);
    expect(batches).toEqual([[0], [2], [3], [1]]);
  });

  it('drops a request cancelled while queued, and lets an executing one finish', async () => {
    const { runner, batches, releaseNext } = heldRunner();
    const { s, clock, stats } = scheduler(runner, { maxBatchSize: 1 });
    const executing = new AbortController();
    const queued = new AbortController();
    const running = s.schedule({ ...request([0]), signal: executing.signal });
    clock.advance(0);
    await flush();
    const waiting = s.schedule({ ...request([1]), signal: queued.signal });
    const after = s.schedule(request([2]));
    queued.abort();
    executing.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'UNAVAILABLE', message: "request to model 'm' was cancelled by the client while it waited in the queue" });
    expect(s.pendingCount).toBe(1);
    await releaseNext();
    await releaseNext();
    await Promise.all([running, after]);
    expect(batches).toEqual([[0], [2]]);
    expect(stats.snapshot().inference_stats).toMatchObject({ success: { count: 2 }, fail: { count: 1 } });
  });

  it('counts executions and busy time per instance', async () => {
    const { runner, releaseNext } = heldRunner();
    const { s, clock } = scheduler(runner, { maxBatchSize: 1 });
    const done = s.schedule(request([1]));
    clock.advance(0);
    await flush();
    clock.advance(250 * US);
    await releaseNext();
    await done;
    expect(s.instanceCounters()).toEqual([{ executions: 1, busyNs: 250_000 }]);
  });
});
