/**
 * Benchmark 9(c): generation tokens/s with 16 concurrent streams vs 1 stream,
 * side by side in one run, on one sluice-chat instance, measured two ways:
 * - "instance": the causal-lm backend in its worker thread, as the gpu-server
 *   runs it (worker-host; responses cross to the main thread), with no
 *   transport in front — the engine's figure: with 16 streams every decode
 *   step is one forward pass over 16 sequences (continuous batching), with 1
 *   stream over one;
 * - "gRPC": a gpu-server on the model repository, one ModelStreamInfer call
 *   per request from a plain @grpc/grpc-js client in the same process (2
 *   cores shared by client, server and the instance's worker). Each stream asks
 * for MAX_TOKENS tokens (ignore_eos, so every stream is the same length);
 * as soon as a stream ends its client starts the next one (closed loop).
 * Two sampling settings are measured: greedy (temperature 0) and seeded
 * nucleus sampling (temperature 1, top_p 0.95), whose per-token softmax over
 * the vocabulary is per-sequence work that batching cannot share. The
 * variants alternate for several rounds; the figure is the median of the
 * per-round ratios (the machine may be shared).
 *
 *   npx tsx bench/generation-concurrency.ts [rounds, default 3] [tokens per variant per round, default 8192]
 */
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as ort from 'onnxruntime-node';
import { createLogger } from '../lib/log';
import { CAUSAL_LM_RUNNER } from '../gpu-server/backends/causal-lm/runner';
import { chatContext, chatInputs, collectingSink, MODEL_REPOSITORY } from '../gpu-server/backends/causal-lm/chat-requests';
import { inWorker } from '../gpu-server/backends/worker-host';
import { isStreamingRunner, type StreamingRunner } from '../gpu-server/core/runner';
import { alternate, median, sampleTexts } from '../gpu-server/testing/load-generator';
import { loadTritonProto } from '../protocol/triton/loader';
import { encodeBytesTensor } from '../protocol/triton/bytes-tensor';
import type { ModelStreamInferResponse__Output as ModelStreamInferResponse } from '../protocol/triton/messages';
import { buildModels } from '../gpu-server/model-builder/build-models';
import { startGpuServer } from '../gpu-server/server';
import { recordResult } from './results';

const ROUNDS = Number(process.argv[2] ?? 3);
const TOKENS = Number(process.argv[3] ?? 8192);
const MAX_TOKENS = 128;
const CONCURRENCY = 16;
const TARGET = 6;

interface Measured {
  tokens: number;
  seconds: number;
  perSecond: number;
}

/** Generates one stream's text; resolves with the number of tokens generated. */
type Generate = (prompt: string, sampling: Record<string, unknown>) => Promise<number>;

/** Runs streams, `concurrency` at a time, until `total` tokens were generated. */
async function measure(generate: Generate, concurrency: number, total: number, sampling: Record<string, unknown>, prompts: string[]): Promise<Measured> {
  let started = 0;
  let tokens = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started * MAX_TOKENS < total) {
        const i = started++;
        const generated = await generate(prompts[i % prompts.length], { ...sampling, max_tokens: MAX_TOKENS, ignore_eos: true, seed: i });
        tokens += generated;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { tokens, seconds, perSecond: tokens / seconds };
}

function instanceGenerate(runner: StreamingRunner): Generate {
  return async (prompt, sampling) => {
    const sink = collectingSink();
    await runner.stream(chatInputs({ prompt, sampling, stream: true, returnCounts: true }), sink, new AbortController().signal);
    return sink.responses.reduce((n, r) => n + (r.numOutputTokens ?? 0), 0);
  };
}

/** One ModelStreamInfer call per request on a shared channel; counts num_output_tokens over the responses. */
function grpcGenerate(port: number): { generate: Generate; close(): void } {
  const pkg = loadTritonProto();
  const client = new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client;
  const method = pkg.inference.GRPCInferenceService.service.ModelStreamInfer;
  const generate: Generate = (prompt, sampling) =>
    new Promise((resolve, reject) => {
      const call = client.makeBidiStreamRequest(
        '/inference.GRPCInferenceService/ModelStreamInfer',
        method.requestSerialize as (v: unknown) => Buffer,
        method.responseDeserialize as (b: Buffer) => ModelStreamInferResponse,
      );
      let tokens = 0;
      call.on('data', (r: ModelStreamInferResponse) => {
        if (r.error_message) reject(new Error(r.error_message));
        const response = r.infer_response!;
        const i = response.outputs.findIndex((o) => o.name === 'num_output_tokens');
        if (i >= 0) tokens += Buffer.from(response.raw_output_contents[i]).readUInt32LE(0);
      });
      call.on('end', () => resolve(tokens));
      call.on('error', reject);
      const flag = Buffer.from([1]);
      call.write({
        model_name: 'sluice-chat',
        inputs: [
          { name: 'text_input', datatype: 'BYTES', shape: [1] },
          { name: 'sampling_parameters', datatype: 'BYTES', shape: [1] },
          { name: 'stream', datatype: 'BOOL', shape: [1] },
          { name: 'return_num_output_tokens', datatype: 'BOOL', shape: [1] },
        ],
        raw_input_contents: [encodeBytesTensor([prompt]), encodeBytesTensor([JSON.stringify(sampling)]), flag, flag],
      });
      call.end();
    });
  return { generate, close: () => client.close() };
}

/**
 * The ceiling batching can reach on this machine: the bare ONNX Runtime decode
 * step (one token per sequence, `past` cached positions) at batch 1 and at
 * batch 16, alternated; returns ms per step for each.
 */
async function bareStepMs(past: number): Promise<[number, number]> {
  const session = await ort.InferenceSession.create(path.join(MODEL_REPOSITORY, 'sluice-chat', '1', 'model.onnx'), { intraOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const feeds = (b: number) => {
    const f: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', new BigInt64Array(b).fill(42n), [b, 1]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(b * (past + 1)).fill(1n), [b, past + 1]),
      position_ids: new ort.Tensor('int64', new BigInt64Array(b).fill(BigInt(past)), [b, 1]),
    };
    for (const name of session.inputNames.filter((n) => n.startsWith('past_key_values.'))) f[name] = new ort.Tensor('float32', new Float32Array(b * 4 * past * 32), [b, 4, past, 32]);
    return f;
  };
  const one = feeds(1);
  const many = feeds(CONCURRENCY);
  const time = async (f: Record<string, ort.Tensor>, n: number) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await session.run(f);
    return Number(process.hrtime.bigint() - t0) / 1e6 / n;
  };
  await time(one, 50);
  await time(many, 50);
  const [ones, manys] = await alternate(5, [() => time(one, 200), () => time(many, 200)]);
  await session.release();
  return [median(ones), median(manys)];
}

async function main(): Promise<void> {
  await buildModels(MODEL_REPOSITORY);
  const runner = await inWorker(CAUSAL_LM_RUNNER)(chatContext('sluice-chat'));
  if (!isStreamingRunner(runner)) throw new Error('the causal-lm runner does not stream');
  const server = await startGpuServer({ repository: MODEL_REPOSITORY, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ bench: 'generation-concurrency' }) });
  const remote = grpcGenerate(server.grpcPort);
  const prompts = sampleTexts(256, 12);
  const paths: Array<[string, Generate]> = [
    ['instance', instanceGenerate(runner)],
    ['gRPC', remote.generate],
  ];
  const settings: Array<[string, Record<string, unknown>]> = [
    ['greedy (temperature 0)', { temperature: 0 }],
    ['sampling (temperature 1, top_p 0.95, seeded)', { temperature: 1, top_p: 0.95 }],
  ];
  const rows: string[] = [];
  const summary: string[] = [];
  const [stepOne, stepMany] = await bareStepMs(80);
  try {
    for (const [where, generate] of paths) {
      for (const [label, sampling] of settings) {
        await measure(generate, CONCURRENCY, 2048, sampling, prompts); // warm-up: session, JIT, channel
        const [one, many] = await alternate(ROUNDS, [() => measure(generate, 1, TOKENS, sampling, prompts), () => measure(generate, CONCURRENCY, TOKENS, sampling, prompts)]);
        const ratios = many.map((m, i) => m.perSecond / one[i].perSecond);
        const ratio = median(ratios);
        rows.push(
          `| ${where} | ${label} | ${median(one.map((m) => m.perSecond)).toFixed(0)} | ${median(many.map((m) => m.perSecond)).toFixed(0)} | **${ratio.toFixed(2)}×** | ${ratios.map((r) => r.toFixed(2)).join(', ')} |`,
        );
        summary.push(`${where}, ${label}: ${ratio.toFixed(2)}× (${ratio >= TARGET ? 'met' : 'not met'})`);
      }
    }
  } finally {
    remote.close();
    await server.stop();
    await runner.close();
  }
  const body = [
    `sluice-chat (the generated 2-layer, 128-wide decoder with a 4097-token vocabulary; ONNX Runtime on CPU, 1 intra-op thread), one instance; streams of ${MAX_TOKENS} tokens (ignore_eos), closed loop; ${ROUNDS} alternating rounds of ${TOKENS} tokens per variant. "instance": the causal-lm backend in its worker thread, no transport; "gRPC": ModelStreamInfer against a gpu-server, client in the same process (\`npx tsx bench/generation-concurrency.ts\`).`,
    '',
    `| path | sampling | 1 stream, tokens/s | ${CONCURRENCY} streams, tokens/s | speed-up (median) | per round |`,
    '| --- | --- | ---: | ---: | ---: | --- |',
    ...rows,
    '',
    `Target ≥ ${TARGET}×: ${summary.join('; ')}. The bound is the forward pass itself: the bare ONNX Runtime decode step (80 cached positions, same session options) takes ${stepOne.toFixed(3)} ms at batch 1 and ${stepMany.toFixed(3)} ms at batch ${CONCURRENCY}, so even with nothing else per token ${CONCURRENCY} streams could reach at most ${((CONCURRENCY * stepOne) / stepMany).toFixed(2)}×. On a GPU a decode step is bound by reading the weights once, whatever the batch, which is where continuous batching's large gains come from; on this 2-core CPU a model this small is bound by per-token arithmetic (the 128×4097 LM head alone is more than half of it), so batching only saves the per-step fixed cost (graph dispatch, the worker loop, messages). Per-token work outside the graph — the softmax and nucleus over the vocabulary when sampling, detokenization, one response per token — is not shared by batching either, hence the lower sampling figures.`,
  ].join('\n');
  console.log(body);
  recordResult('generation-concurrency', `9(c) Continuous batching: generation tokens/s, ${CONCURRENCY} streams vs 1`, body);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
