/**
 * The main-thread side of a model instance's worker, against a scripted
 * stand-in for the thread: streaming is offered only when the worker says
 * so, responses and cancels cross as messages, and a worker that dies fails
 * every live batch and stream instead of leaving them hanging.
 */
import { EventEmitter } from 'node:events';
import { InferenceErrorCode } from '../core/errors';
import type { RunnerContext, StreamingRunner } from '../core/runner';
import { isStreamingRunner } from '../core/runner';
import type { FromWorker, ToWorker } from './worker-protocol';

class FakeWorker extends EventEmitter {
  static last: FakeWorker;
  readonly posted: ToWorker[] = [];
  constructor() {
    super();
    FakeWorker.last = this;
  }
  postMessage(message: ToWorker) {
    this.posted.push(message);
  }
  send(message: FromWorker) {
    this.emit('message', message);
  }
  async terminate() {
    return 0;
  }
}

jest.mock('node:worker_threads', () => ({ Worker: FakeWorker }));

// Imported after the mock is in place.
import { inWorker } from './worker-host';

const context = { config: { name: 'm' }, instance: { name: 'm_0' } } as unknown as RunnerContext;

async function start(streaming: boolean) {
  const pending = inWorker('causal-lm')(context);
  FakeWorker.last.send({ type: 'ready', streaming });
  return { runner: await pending, worker: FakeWorker.last };
}

const tensor = { name: 'text_input', datatype: 'BYTES' as const, shape: [1], data: Buffer.from([1, 0, 0, 0, 120]) };

describe('worker host', () => {
  it('offers stream() only for a worker whose runner streams', async () => {
    expect(isStreamingRunner((await start(false)).runner)).toBe(false);
    expect(isStreamingRunner((await start(true)).runner)).toBe(true);
  });

  it('delivers responses in order, forwards a cancel, and resolves when the worker reports done', async () => {
    const { runner, worker } = await start(true);
    const received: Array<[string, boolean]> = [];
    const controller = new AbortController();
    const done = (runner as StreamingRunner).stream(new Map([['text_input', tensor]]), { response: (o, final) => received.push([[...o.keys()].join(), final]) }, controller.signal);
    const started = worker.posted.find((m) => m.type === 'stream');
    expect(started).toMatchObject({ type: 'stream', cancelled: false });
    const id = (started as { id: number }).id;
    expect((runner as StreamingRunner).activeSequences).toBe(1);
    const out = { name: 'text_output', datatype: 'BYTES' as const, shape: [1], data: new Uint8Array([0, 0, 0, 0]) };
    worker.send({ type: 'response', id, outputs: [out], final: false });
    controller.abort();
    expect(worker.posted[worker.posted.length - 1]).toEqual({ type: 'cancel', id });
    worker.send({ type: 'response', id, outputs: [out], final: true });
    worker.send({ type: 'done', id });
    await done;
    expect(received).toEqual([
      ['text_output', false],
      ['text_output', true],
    ]);
    expect((runner as StreamingRunner).activeSequences).toBe(0);
  });

  it('keeps the error code of a failed stream', async () => {
    const { runner, worker } = await start(true);
    const done = (runner as StreamingRunner).stream(new Map([['text_input', tensor]]), { response: () => undefined }, new AbortController().signal);
    const id = (worker.posted.find((m) => m.type === 'stream') as { id: number }).id;
    worker.send({ type: 'error', id, message: 'sampling_parameters.top_p expects a number in (0, 1], but got 2', code: InferenceErrorCode.InvalidArgument });
    await expect(done).rejects.toMatchObject({ name: 'InferenceError', code: 'INVALID_ARGUMENT' });
  });

  it('fails every live stream and batch when the worker dies, and refuses new ones', async () => {
    const { runner, worker } = await start(true);
    const streaming = runner as StreamingRunner;
    const streams = [1, 2].map(() => streaming.stream(new Map([['text_input', tensor]]), { response: () => undefined }, new AbortController().signal));
    const batch = runner.execute(new Map([['text_input', tensor]]));
    worker.emit('exit', 1);
    for (const p of [...streams, batch]) await expect(p).rejects.toThrow('the causal-lm worker exited (code 1)');
    await expect(streaming.stream(new Map(), { response: () => undefined }, new AbortController().signal)).rejects.toThrow('exited');
    expect(streaming.activeSequences).toBe(0);
  });
});
