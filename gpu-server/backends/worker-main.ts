/**
 * The body of a model instance's worker thread: creates the named built-in
 * backend's runner for its model version, then executes batches (and, for
 * streaming runners, runs streams) posted by the main thread until told to
 * close. Runs outside any test sandbox, in its own V8 isolate, so ONNX
 * Runtime sessions of different instances run in parallel.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isStreamingRunner, RowFailures, type ModelRunner } from '../core/runner';
import type { Tensor } from '../core/tensor';
import { BUILTIN_BACKENDS } from './registry';
import { fromWireTensors, toWireError, toWireTensors, transferList, type FromWorker, type ToWorker, type WireError, type WorkerInit } from './worker-protocol';

const port = parentPort!;
const post = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

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
  /** Live streams by id, to abort on 'cancel'. */
  const streams = new Map<number, AbortController>();
  /** Stream messages of the current turn, posted together at its end. */
  let outbox: FromWorker[] = [];
  let outboxTransfer: ArrayBuffer[] = [];
  const queue = (message: FromWorker, transfer: ArrayBuffer[] = []) => {
    if (outbox.length === 0) {
      queueMicrotask(() => {
        const messages = outbox;
        const transfers = outboxTransfer;
        outbox = [];
        outboxTransfer = [];
        post(messages.length === 1 ? messages[0] : { type: 'batch', messages }, transfers);
      });
    }
    outbox.push(message);
    outboxTransfer.push(...transfer);
  };
  port.on('message', (message: ToWorker) => {
    switch (message.type) {
      case 'close':
        // Streams still live fail with the runner's "unloaded" error (the core drains before closing).
        runner.close().finally(() => {
          post({ type: 'closed' });
          port.close();
        });
        return;
      case 'cancel':
        streams.get(message.id)?.abort();
        return;
      case 'stream': {
        if (!isStreamingRunner(runner)) {
          queue({ type: 'error', id: message.id, message: `the ${init.backend} backend does not stream` });
          return;
        }
        const controller = new AbortController();
        if (message.cancelled) controller.abort();
        streams.set(message.id, controller);
        const sink = {
          response(outputs: Map<string, Tensor>, final: boolean) {
            const wire = toWireTensors(outputs.values());
            queue({ type: 'response', id: message.id, outputs: wire, final }, transferList(wire));
          },
        };
        runner
          .stream(fromWireTensors(message.inputs), sink, controller.signal)
          .then(
            () => queue({ type: 'done', id: message.id }),
            (error: unknown) => queue({ type: 'error', id: message.id, ...toWireError(error) }),
          )
          .finally(() => streams.delete(message.id));
        return;
      }
      case 'execute':
        runner.execute(fromWireTensors(message.inputs)).then(
          (outputs) => {
            const wire = toWireTensors(outputs.values());
            post({ type: 'result', id: message.id, outputs: wire }, transferList(wire));
          },
          (error: unknown) => {
            if (!(error instanceof RowFailures)) return post({ type: 'error', id: message.id, ...toWireError(error) });
            const wire = toWireTensors(error.outputs.values());
            const rowErrors = [...error.failures].map(([row, failure]): [number, WireError] => [row, toWireError(failure)]);
            post({ type: 'result', id: message.id, outputs: wire, rowErrors }, transferList(wire));
          },
        );
    }
  });
  post({ type: 'ready', streaming: isStreamingRunner(runner) });
}

void run();
