import type { ModelInferRequest, ModelInferResponse } from '../../../gpu-server/protocol/messages';
import { decodeBytesTensor } from '../../../gpu-server/protocol/bytes-tensor';
import { Embedder } from '../embedder';
import type { ModelInfo } from '../model-catalog';
import type { TritonClient } from '../triton-client';

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
  const texts = decodeBytesTensor(request.raw_input_contents![0]);
  const out = new Float32Array(texts.flatMap((t) => [t.length, texts.length]));
  return Promise.resolve({
    model_name: 'm',
    model_version: '1',
    id: '',
    outputs: [{ name: 'embedding', datatype: 'FP32', shape: [texts.length, 2] }],
    raw_output_contents: [Buffer.from(out.buffer)],
  });
}

describe('Embedder', () => {
  it('makes one ModelInfer per batch, cut at max_batch_size, with results in request order', async () => {
    const { client, calls } = fakeTriton(echo);
    const embedder = new Embedder(client, 1);
    const texts = ['a', 'bb', 'ccc', 'dddd', 'eeeee', 'ffffff'];
    const vectors = await Promise.all(texts.map((t) => embedder.embed(model, [t]).then(([v]) => Array.from(v))));
    expect(calls.map((c) => c.inputs[0].shape)).toEqual([[4, 1], [2, 1]]);
    expect(vectors).toEqual([[1, 4], [2, 4], [3, 4], [4, 4], [5, 2], [6, 2]]);
    expect(calls).toHaveLength(2);
  });

  it('rejects every waiter of a failed batch with the same error, so none hangs', async () => {
    const { client } = fakeTriton(() => Promise.reject(new Error('GPU on fire')));
    const embedder = new Embedder(client, 1);
    const results = await Promise.allSettled(['a', 'b', 'c'].map((t) => embedder.embed(model, [t])));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(results.map((r) => (r as PromiseRejectedResult).reason.message)).toEqual(['GPU on fire', 'GPU on fire', 'GPU on fire']);
  });

  it('refuses a response whose shape does not match the batch, saying what it expected and got', async () => {
    const { client } = fakeTriton(async (request) => ({ ...(await echo(request)), outputs: [{ name: 'embedding', datatype: 'FP32', shape: [1, 2] }] }));
    const embedder = new Embedder(client, 1);
    await expect(embedder.embed(model, ['a', 'b'])).rejects.toThrow('ModelInfer on m expects an "embedding" FP32 output of shape [2, D], but got FP32 [1, 2]');
  });

  it('refuses a response whose byte count does not match its declared shape', async () => {
    const { client } = fakeTriton(async (request) => {
      const response = await echo(request);
      return { ...response, raw_output_contents: [response.raw_output_contents[0].subarray(4)] };
    });
    const embedder = new Embedder(client, 1);
    await expect(embedder.embed(model, ['a', 'b'])).rejects.toThrow('ModelInfer on m returned 12 bytes for an FP32 [2, 2] tensor; expected 16');
  });
});
