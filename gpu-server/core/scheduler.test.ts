import type { ModelRunner } from './runner';
import { Scheduler } from './scheduler';
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
  it('combines requests that arrive together into one execution and splits the results back', async () => {
    const { runner, batches } = fakeRunner();
    const stats = new StatisticsRecorder('m', '1');
    const scheduler = new Scheduler({ runners: [runner], stats, maxBatchSize: 8, dynamicBatching: true });
    const results = await Promise.all([[1], [2, 3], [4]].map((v) => scheduler.schedule(request(v))));
    expect(batches).toEqual([[4, 1]]);
    expect(results.map((r) => read(r.get('y')!))).toEqual([[2], [4, 6], [8]]);
    expect(results.map((r) => r.get('y')!.shape)).toEqual([[1, 1], [2, 1], [1, 1]]);
    const s = stats.snapshot();
    expect(s).toMatchObject({ inference_count: 4, execution_count: 1, inference_stats: { success: { count: 3 } } });
    expect(s.batch_stats.map((b) => b.batch_size)).toEqual([4]);
  });

  it('never exceeds max_batch_size', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 4, dynamicBatching: true });
    await Promise.all([1, 2, 3, 4, 5, 6].map((v) => scheduler.schedule(request([v]))));
    expect(batches).toEqual([[4, 1], [2, 1]]);
  });

  it('does not mix requests whose non-batch shapes differ', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 8, dynamicBatching: true });
    const [a, b, c] = await Promise.all([scheduler.schedule(request([1])), scheduler.schedule(request([2, 3], 2)), scheduler.schedule(request([4]))]);
    expect(batches).toEqual([[2, 1], [1, 2]]);
    expect([read(a.get('y')!), read(b.get('y')!), read(c.get('y')!)]).toEqual([[2], [4, 6], [8]]);
  });

  it('runs each request alone without dynamic batching', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 8, dynamicBatching: false });
    await Promise.all([[1], [2], [3]].map((v) => scheduler.schedule(request(v))));
    expect(batches).toEqual([[1, 1], [1, 1], [1, 1]]);
  });

  it('rejects every request of a failed batch and counts the failures', async () => {
    const { runner } = fakeRunner({ fail: true });
    const stats = new StatisticsRecorder('m', '1');
    const scheduler = new Scheduler({ runners: [runner], stats, maxBatchSize: 8, dynamicBatching: true });
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
    const scheduler = new Scheduler({ runners: [gated('a'), gated('b')], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 1, dynamicBatching: true });
    const results = [1, 2, 3].map((v) => scheduler.schedule(request([v])));
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual(['a', 'b']);
    release();
    await Promise.all(results);
    expect(started).toHaveLength(3);
  });

  it('drains queued work, then refuses new requests with UNAVAILABLE', async () => {
    const { runner, batches } = fakeRunner();
    const scheduler = new Scheduler({ runners: [runner], stats: new StatisticsRecorder('m', '1'), maxBatchSize: 8, dynamicBatching: true });
    const pending = scheduler.schedule(request([1]));
    await scheduler.drain();
    expect(read((await pending).get('y')!)).toEqual([2]);
    expect(batches).toHaveLength(1);
    await expect(scheduler.schedule(request([1]))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });
});
