/**
 * Runs a built-in backend in a worker thread and presents it to the
 * scheduler as an ordinary ModelRunner. Each runner created this way is one
 * model instance with its own thread and ONNX Runtime session: on the main
 * thread, sessions of different instances would not overlap (DESIGN §7).
 *
 * The worker loads TypeScript through tsx's require hook, so it works the same
 * under `tsx`, under jest, and in a plain Node process.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ModelRunner, RunnerContext, RunnerFactory } from '../core/runner';
import type { Tensor } from '../core/tensor';
import type { FromWorker, ToWorker, WireTensor, WorkerInit } from './worker-protocol';

const WORKER_MAIN = path.join(__dirname, 'worker-main');
const BOOTSTRAP = `require('tsx/cjs'); require(${JSON.stringify(WORKER_MAIN)});`;

interface Waiter {
  resolve(outputs: Map<string, Tensor>): void;
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
  let nextId = 1;
  let exited: Error | undefined;
  let closed: (() => void) | undefined;

  /** Settles every waiting batch when the thread dies, so no caller hangs. */
  const failAll = (error: Error) => {
    exited ??= error;
    for (const w of waiters.values()) w.reject(error);
    waiters.clear();
  };

  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: FromWorker) => {
      if (message.type === 'ready') {
        worker.off('message', onMessage);
        resolve();
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

  worker.on('message', (message: FromWorker) => {
    if (message.type === 'result' || message.type === 'error') {
      const waiter = waiters.get(message.id);
      waiters.delete(message.id);
      if (!waiter) return;
      if (message.type === 'error') waiter.reject(new Error(message.message));
      else waiter.resolve(new Map(message.outputs.map((t) => [t.name, fromWire(t)])));
    } else if (message.type === 'closed') {
      closed?.();
    }
  });
  worker.on('error', (error) => failAll(new Error(`the ${backend} worker failed: ${error.message}`)));
  worker.on('exit', (code) => {
    failAll(new Error(`the ${backend} worker exited (code ${code})`));
    closed?.();
  });

  return {
    execute(inputs) {
      if (exited) return Promise.reject(exited);
      const id = nextId++;
      const wire = [...inputs.values()].map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: new Uint8Array(t.data) }));
      return new Promise((resolve, reject) => {
        waiters.set(id, { resolve, reject });
        const message: ToWorker = { type: 'execute', id, inputs: wire };
        worker.postMessage(message, wire.map((t) => t.data.buffer as ArrayBuffer));
      });
    },
    async close() {
      if (exited) return;
      await new Promise<void>((resolve) => {
        closed = resolve;
        worker.postMessage({ type: 'close' } satisfies ToWorker);
        setTimeout(() => void worker.terminate().then(() => resolve()), 5000).unref();
      });
      await worker.terminate();
    },
  };
}

function fromWire(t: WireTensor): Tensor {
  return { name: t.name, datatype: t.datatype, shape: t.shape, data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
}
