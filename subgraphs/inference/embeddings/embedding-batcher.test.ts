import type { ModelInferRequest, ModelInferResponse__Output as ModelInferResponse } from '../../../protocol/triton/messages';
import { decodeBytesTensor } from '../../../protocol/triton/bytes-tensor';
import { EmbeddingBatcher } from './embedding-batcher';
import type { ModelInfo } from '../models/model-catalog';
import type { TritonClient } from '../gpu-tier/triton-client';
import { inferResponse, outputTensor } from '../testing/triton-messages';

/** Unit tests of the batch function's contract, against an in-process fake of the one call it makes. */
const model = { id: 'm', version: '1', maxBatchSize: 4 } as ModelInfo;

function fakeTriton(answer: (request: ModelInferRequest) => Promise<ModelInferResponse>) {
  const calls: ModelInferRequest[] = [];
  const client = {
    modelInfer: (request: ModelInferRequest) => {
      calls.push(request);
      return answer(request);
    },
  } as unknown as TritonClient;
  return { client, calls };
}

/** Embeds text i as the 2-d vector [len, i-th call's batch size], so order mistakes show. */
function echo(request: ModelInferRequest): Promise<ModelInferResponse> {
  const texts = decodeBytesTensor(request.raw_input_contents![0] as Buffer);
  const out = new Float32Array(texts.flatMap((t) => [t.length, texts.length]));
  return Promise.resolve(inferResponse({ model_name: 'm', model_version: '1', outputs: [outputTensor('embedding', 'FP32', [texts.length, 2])], raw_output_contents: [Buffer.from(out.buffer)] }));
}

describe('EmbeddingBatcher', () => {
  it('makes one ModelInfer per batch, cut at max_batch_size, with results in request order', async () => {
    const { client, calls } = fakeTriton(echo);
    const embedder = new EmbeddingBatcher(client, 1);
    const texts = ['a', 'bb', 'ccc', 'dddd', 'eeeee', 'ffffff'];
    const vectors = await Promise.all(texts.map((t) => embedder.embed(model, [t]).then(([v]) => Array.from(v))));
    expect(calls.map((c) => c.inputs![0].shape)).toEqual([
      [4, 1],
      [2, 1],
    ]);
    expect(vectors).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
      [5, 2],
      [6, 2],
    ]);
    expect(calls).toHaveLength(2);
  });

  it('rejects every waiter of a failed batch with the same error, so none hangs', async () => {
    const { client } = fakeTriton(() => Promise.reject(new Error('GPU on fire')));
    const embedder = new EmbeddingBatcher(client, 1);
    const results = await Promise.allSettled(['a', 'b', 'c'].map((t) => embedder.embed(model, [t])));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(results.map((r) => (r as PromiseRejectedResult).reason.message)).toEqual(['GPU on fire', 'GPU on fire', 'GPU on fire']);
  });

  it('refuses a response whose shape does not match the batch, saying what it expected and got', async () => {
    const { client } = fakeTriton(async (request) => ({ ...(await echo(request)), outputs: [outputTensor('embedding', 'FP32', [1, 2])] }));
    const embedder = new EmbeddingBatcher(client, 1);
    await expect(embedder.embed(model, ['a', 'b'])).rejects.toThrow('ModelInfer on m expects an "embedding" FP32 output of shape [2, D], but got FP32 [1, 2]');
  });

  it('refuses a response whose byte count does not match its declared shape', async () => {
    const { client } = fakeTriton(async (request) => {
      const response = await echo(request);
      return { ...response, raw_output_contents: [response.raw_output_contents[0].subarray(4)] };
    });
    const embedder = new EmbeddingBatcher(client, 1);
    await expect(embedder.embed(model, ['a', 'b'])).rejects.toThrow('ModelInfer on m returned 12 bytes for an FP32 [2, 2] tensor; expected 16');
  });
});
