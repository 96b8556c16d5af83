/** Messages between a model instance's worker thread and the main thread. */
import type { RunnerContext } from '../core/runner';
import type { WireDatatype } from '../protocol/datatypes';

export interface WireTensor {
  name: string;
  datatype: WireDatatype;
  shape: number[];
  data: Uint8Array;
}

export interface WorkerInit {
  backend: string;
  context: RunnerContext;
}

export type ToWorker = { type: 'execute'; id: number; inputs: WireTensor[] } | { type: 'close' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; outputs: WireTensor[] }
  | { type: 'error'; id: number; message: string }
  | { type: 'closed' };
