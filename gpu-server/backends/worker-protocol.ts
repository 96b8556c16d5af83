/** Messages between a model instance's worker thread and the main thread. */
import { InferenceError, type InferenceErrorCode } from '../core/errors';
import type { RunnerContext } from '../core/runner';
import type { Tensor } from '../core/tensor';
import type { WireDatatype } from '../../protocol/triton/datatypes';

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

/** A failure of one execute or stream; `code` when the runner threw an InferenceError (e.g. INVALID_ARGUMENT). */
export interface WireError {
  message: string;
  code?: InferenceErrorCode;
}

export type ToWorker =
  | { type: 'execute'; id: number; inputs: WireTensor[] }
  /** Starts one request of a streaming runner; `cancelled` when the caller's signal had already fired. */
  | { type: 'stream'; id: number; inputs: WireTensor[]; cancelled: boolean }
  /** The client cancelled stream `id`: abort its signal. */
  | { type: 'cancel'; id: number }
  | { type: 'close' };

export type FromWorker =
  /** `streaming`: the runner is a StreamingRunner (the host then offers `stream`). */
  | { type: 'ready'; streaming: boolean }
  | { type: 'failed'; message: string }
  /** `rowErrors`: rows of the batch that failed (RowFailures), by row index; the others are good. */
  | { type: 'result'; id: number; outputs: WireTensor[]; rowErrors?: Array<[number, WireError]> }
  /** One response of stream `id`; the one with final=true is the last. */
  | { type: 'response'; id: number; outputs: WireTensor[]; final: boolean }
  /** Stream `id` settled successfully (after its final response). */
  | { type: 'done'; id: number }
  /** Execute or stream `id` failed. */
  | ({ type: 'error'; id: number } & WireError)
  /**
   * Stream messages produced in one turn of the worker (e.g. one token for
   * each of 16 sequences after a decode step), in order: one postMessage
   * instead of one per response.
   */
  | { type: 'batch'; messages: FromWorker[] }
  | { type: 'closed' };

/** Tensors as they cross the thread boundary: each in a fresh ArrayBuffer that can be transferred (not a view into a pool). */
export function toWireTensors(tensors: Iterable<Tensor>): WireTensor[] {
  return [...tensors].map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape, data: new Uint8Array(t.data) }));
}

/** The buffers to transfer with `toWireTensors`' result. */
export function transferList(tensors: WireTensor[]): ArrayBuffer[] {
  return tensors.map((t) => t.data.buffer as ArrayBuffer);
}

export function fromWireTensors(tensors: WireTensor[]): Map<string, Tensor> {
  return new Map(tensors.map((t) => [t.name, { name: t.name, datatype: t.datatype, shape: t.shape, data: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) }]));
}

/** An error as it crosses the thread boundary, keeping an InferenceError's code. */
export function toWireError(error: unknown): WireError {
  if (error instanceof InferenceError) return { message: error.message, code: error.code };
  return { message: error instanceof Error ? error.message : String(error) };
}

export function fromWireError(error: WireError): Error {
  return error.code ? new InferenceError(error.code, error.message) : new Error(error.message);
}
