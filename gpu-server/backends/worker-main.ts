/**
 * The body of a model instance's worker thread: creates the named built-in
 * backend's runner for its model version, then executes batches posted by the
 * main thread until told to close. Runs outside any test sandbox, in its own
 * V8 isolate, so ONNX Runtime sessions of different instances run in parallel.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ModelRunner } from '../core/runner';
import type { Tensor } from '../core/tensor';
import { BUILTIN_BACKENDS } from './registry';
import type { FromWorker, ToWorker, WireTensor, WorkerInit } from './worker-protocol';

const port = parentPort!;
const post = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

/** Copies into a fresh ArrayBuffer that can be transferred (not a view into a pool). */
function toWire(t: Tensor): WireTensor {
  return { name: t.name, datatype: t.datatype, shape: t.shape, data: new Uint8Array(t.data) };
}

async function run(): Promise<void> {
  const init = workerData as WorkerInit;
  let runner: ModelRunner;
  try {
    const factory = BUILTIN_BACKENDS[init.backend];
    if (!factory) throw new Error(`unknown backend '${init.backend}'`);
    runner = await factory(init.context);
  } catch (error) {
    post({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
    return;
  }
  port.on('message', (message: ToWorker) => {
    if (message.type === 'close') {
      runner.close().finally(() => {
        post({ type: 'closed' });
        port.close();
      });
      return;
    }
    const inputs = new Map<string, Tensor>(
      message.inputs.map((t) => [t.name, { ...t, data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) }]),
    );
    runner.execute(inputs).then(
      (outputs) => {
        const wire = [...outputs.values()].map(toWire);
        post({ type: 'result', id: message.id, outputs: wire }, wire.map((t) => t.data.buffer as ArrayBuffer));
      },
      (error: unknown) => post({ type: 'error', id: message.id, message: error instanceof Error ? error.message : String(error) }),
    );
  });
  post({ type: 'ready' });
}

void run();
