/**
 * ONNX Runtime session options for one model instance. Each instance is its
 * own execution context bound to one device (Triton's instance_group): a
 * KIND_GPU instance with the CUDA provider gets its GPU's device id; every
 * instance gets one intra-op thread by default, because instances already
 * run in parallel (one worker thread each) and sessions that each start a
 * thread per core fight over the same cores — on this 2-core machine two
 * instances scaled 1.22× with the default pool and 1.73× with one thread each.
 * The config parameter `intra_op_threads` overrides it per model.
 */
import type { InferenceSession } from 'onnxruntime-node';
import type { RunnerContext } from '../core/runner';
import { configParameter } from '../../protocol/triton/model-config';

export function instanceSessionOptions(context: RunnerContext): InferenceSession.SessionOptions {
  const { instance, config } = context;
  const raw = configParameter(config, 'intra_op_threads');
  const threads = raw === undefined ? 1 : Number(raw);
  if (!Number.isInteger(threads) || threads < 0) throw new Error(`parameter 'intra_op_threads' expects a non-negative integer (0: one per core), but got '${raw}'`);
  return {
    executionProviders: [instance.executionProvider === 'cuda' ? { name: 'cuda', deviceId: instance.device } : 'cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  };
}
