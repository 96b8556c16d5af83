/**
 * Runs a built-in backend in a worker thread and presents it to the
 * scheduler as an ordinary ModelRunner — and as a StreamingRunner when the
 * worker's runner streams (it says so in its 'ready' message): responses
 * cross the thread boundary as they come, a cancel is forwarded as a message,
 * and a worker that dies fails every live batch and stream, so no caller
 * hangs. Each runner created this way is one
 * model instance with its own thread and ONNX Runtime session: on the main
 * thread, sessions of different instances would not overlap (DESIGN §7).
 *
 * Run from TypeScript (tsx, jest) the worker loads its TypeScript through
 * tsx's require hook; run from the production build (dist/), it is plain
 * JavaScript and needs no hook.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { RowFailures, type ModelRunner, type ResponseSink, type RunnerContext, type RunnerFactory, type StreamingRunner } from '../core/runner';
import type { Tensor } from '../core/tensor';
import { fromWireError, fromWireTensors, toWireTensors, transferList, type FromWorker, type ToWorker, type WorkerInit } from './worker-protocol';

const WORKER_MAIN = path.join(__dirname, 'worker-main');
const BOOTSTRAP = `${__filename.endsWith('.ts') ? "require('tsx/cjs'); " : ''}require(${JSON.stringify(WORKER_MAIN)});`;

interface Waiter {
  resolve(outputs: Map<string, Tensor>): void;
  reject(error: Error): void;
}

interface LiveStream {
  sink: ResponseSink;
  resolve(): void;
  reject(error: Error): void;
}

/** A RunnerFactory that runs backend `backend` in its own worker thread. */
export function inWorker(backend: string): RunnerFactory {
  return (context) => startWorkerRunner(backend, context);
}

async function startWorkerRunner(backend: string, context: RunnerContext): Promise<ModelRunner> {
  const init: WorkerInit = { backend, context };
  const worker = new Worker(BOOTSTRAP, { eval: true, workerData: init });
  const waiters = new Map<number, Waiter>();
  const streams = new Map<number, LiveStream>();
  let nextId = 1;
  let exited: Error | undefined;
  let closed: (() => void) | undefined;

  /** Settles every waiting batch and live stream when the thread dies, so no caller hangs. */
  const failAll = (error: Error) => {
    exited ??= error;
    for (const w of waiters.values()) w.reject(error);
    waiters.clear();
    for (const s of streams.values()) s.reject(error);
    streams.clear();
  };

  const streaming = await new Promise<boolean>((resolve, reject) => {
    const onMessage = (message: FromWorker) => {
      if (message.type === 'ready') {
        worker.off('message', onMessage);
        resolve(message.streaming);
      } else if (message.type === 'failed') {
        worker.off('message', onMessage);
        reject(new Error(message.message));
        void worker.terminate();
      }
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the ${backend} worker exited with code ${code} while loading`)));
  });

  const onMessage = (message: FromWorker): void => {
    switch (message.type) {
      case 'batch':
        message.messages.forEach(onMessage);
        return;
      case 'result': {
        const waiter = waiters.get(message.id);
        waiters.delete(message.id);
        if (message.rowErrors?.length) {
          waiter?.reject(new RowFailures(fromWireTensors(message.outputs), new Map(message.rowErrors.map(([row, error]) => [row, fromWireError(error)]))));
        } else {
          waiter?.resolve(fromWireTensors(message.outputs));
        }
        return;
      }
      case 'response':
        streams.get(message.id)?.sink.response(fromWireTensors(message.outputs), message.final);
        return;
      case 'done': {
        const stream = streams.get(message.id);
        streams.delete(message.id);
        stream?.resolve();
        return;
      }
      case 'error': {
        const pending = waiters.get(message.id) ?? streams.get(message.id);
        waiters.delete(message.id);
        streams.delete(message.id);
        pending?.reject(fromWireError(message));
        return;
      }
      case 'closed':
        closed?.();
    }
  };
  worker.on('message', onMessage);
  worker.on('error', (error) => failAll(new Error(`the ${backend} worker failed: ${error.message}`)));
  worker.on('exit', (code) => {
    failAll(new Error(`the ${backend} worker exited (code ${code})`));
    closed?.();
  });

  const post = (message: ToWorker, transfer: ArrayBuffer[] = []) => worker.postMessage(message, transfer);

  const runner: ModelRunner = {
    execute(inputs) {
      if (exited) return Promise.reject(exited);
      const id = nextId++;
      const wire = toWireTensors(inputs.values());
      return new Promise((resolve, reject) => {
        waiters.set(id, { resolve, reject });
        post({ type: 'execute', id, inputs: wire }, transferList(wire));
      });
    },
    async close() {
      if (exited) return;
      await new Promise<void>((resolve) => {
        closed = resolve;
        post({ type: 'close' });
        setTimeout(() => void worker.terminate().then(() => resolve()), 5000).unref();
      });
      await worker.terminate();
    },
  };
  if (!streaming) return runner;

  const streamingRunner: StreamingRunner = {
    ...runner,
    get activeSequences() {
      return streams.size;
    },
    stream(inputs, sink, signal) {
      if (exited) return Promise.reject(exited);
      const id = nextId++;
      const wire = toWireTensors(inputs.values());
      const cancel = () => {
        if (streams.has(id) && !exited) post({ type: 'cancel', id });
      };
      return new Promise<void>((resolve, reject) => {
        streams.set(id, { sink, resolve, reject });
        post({ type: 'stream', id, inputs: wire, cancelled: signal.aborted }, transferList(wire));
        if (!signal.aborted) signal.addEventListener('abort', cancel, { once: true });
      }).finally(() => signal.removeEventListener('abort', cancel));
    },
  };
  return streamingRunner;
}
