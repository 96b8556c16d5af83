/**
 * In-process runners for tests of the core, the repository and the gRPC
 * adapter without worker threads or ONNX Runtime: an echo model, and a
 * streaming "generator" that answers a prompt with one token per step.
 */
import { decodeBytesTensor, encodeBytesTensor } from '../../protocol/triton/bytes-tensor';
import type { ModelRunner, RunnerContext, RunnerFactory, StreamingRunner } from '../core/runner';
import type { Tensor } from '../core/tensor';

/** Copies every input to the output of the same position (shapes kept). */
export const echoBackend: RunnerFactory = async (context: RunnerContext): Promise<ModelRunner> => ({
  async execute(inputs) {
    const out = new Map<string, Tensor>();
    context.config.output.forEach((o, i) => {
      const input = inputs.get(context.config.input[i].name)!;
      out.set(o.name, { ...input, name: o.name });
    });
    return out;
  },
  close: async () => undefined,
});

export interface FakeGeneratorLog {
  /** Tokens produced, over every request. */
  tokens: number;
  /** Instance index of each request, in arrival order. */
  instances: number[];
}

const bytes = (name: string, text: string): Tensor => ({ name, datatype: 'BYTES', shape: [1], data: encodeBytesTensor([text]) });

/**
 * A decoupled backend: `text_input` "count:N[:empty-final][:fail-at:K]"
 * yields N responses `text_output` "t0 ", "t1 ", … one per `stepMs`, the last
 * final with `finish_reason` "length" (or an extra empty final response when
 * asked); aborting stops it before the next step with a final response whose
 * finish_reason is "cancelled".
 */
export function fakeGenerator(stepMs: number, log: FakeGeneratorLog): RunnerFactory {
  return async (context) => {
    let active = 0;
    const runner: StreamingRunner = {
      get activeSequences() {
        return active;
      },
      execute: () => Promise.reject(new Error('the fake generator only streams')),
      async stream(inputs, sink, signal) {
        log.instances.push(context.instance.index);
        const prompt = decodeBytesTensor(inputs.get('text_input')!.data, 1)[0].toString('utf8');
        const count = Number(/count:(\d+)/.exec(prompt)?.[1] ?? 3);
        const failAt = Number(/fail-at:(\d+)/.exec(prompt)?.[1] ?? -1);
        const emptyFinal = prompt.includes('empty-final');
        active++;
        try {
          for (let i = 0; i < count; i++) {
            await new Promise((resolve) => setTimeout(resolve, stepMs));
            if (signal.aborted) {
              sink.response(new Map([['finish_reason', bytes('finish_reason', 'cancelled')]]), true);
              return;
            }
            if (i === failAt) throw new Error(`fake failure at step ${i}`);
            log.tokens++;
            const last = i === count - 1;
            const out = new Map([['text_output', bytes('text_output', `t${i} `)]]);
            if (last && !emptyFinal) out.set('finish_reason', bytes('finish_reason', 'length'));
            sink.response(out, last && !emptyFinal);
          }
          if (emptyFinal) sink.response(new Map(), true);
        } finally {
          active--;
        }
      },
      close: async () => undefined,
    };
    return runner;
  };
}

/** config.pbtxt of a decoupled model served by `fakeGenerator`. */
export function fakeGeneratorConfig(name: string, instances = 1): string {
  return `name: "${name}"
max_batch_size: 0
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ -1 ] }, { name: "finish_reason" data_type: TYPE_STRING dims: [ 1 ] } ]
model_transaction_policy { decoupled: true }
instance_group [ { count: ${instances} kind: KIND_CPU } ]
`;
}
