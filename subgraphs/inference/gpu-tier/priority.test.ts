/** Callers' priority levels, and how they reach the GPU tier's requests. */
import type { ModelInferRequest, ModelInferResponse__Output as ModelInferResponse } from '../../../protocol/triton/messages';
import { EmbeddingBatcher } from '../embeddings/embedding-batcher';
import { generationRequest } from '../completions/generation-tensors';
import type { ModelInfo } from '../models/model-catalog';
import { parsePriorityByScope, priorityFor } from './priority';
import type { TritonClient } from './triton-client';
import { inferResponse, outputTensor } from '../testing/triton-messages';

describe('priorityFor', () => {
  const table = parsePriorityByScope('admin=1, inference:priority=2,default=3');

  it('gives the best (lowest) level among the caller scopes, else the default entry', () => {
    expect(priorityFor({ scopes: ['inference:invoke', 'inference:priority'] }, table)).toBe(2);
    expect(priorityFor({ scopes: ['inference:priority', 'admin'] }, table)).toBe(1);
    expect(priorityFor({ scopes: ['inference:invoke'] }, table)).toBe(3);
  });

  it('without a default entry, a caller with no mapped scope gets no priority (the model default)', () => {
    expect(priorityFor({ scopes: ['inference:invoke'] }, parsePriorityByScope('admin=1'))).toBeUndefined();
    expect(priorityFor({ scopes: ['admin'] }, parsePriorityByScope(''))).toBeUndefined();
  });

  it('refuses entries that are not scope=level with a level from 1', () => {
    expect(() => parsePriorityByScope('admin=0')).toThrow('INFERENCE_PRIORITY_BY_SCOPE expects "scope=level" entries with levels from 1 (served first), but got "admin=0"');
    expect(() => parsePriorityByScope('admin')).toThrow(/but got "admin"/);
  });
});

const chat = { id: 'chat', version: '1', maxBatchSize: 4, inputs: [{ name: 'text_input', datatype: 'BYTES', dims: [1] }] } as ModelInfo;

describe('the priority parameter', () => {
  it('generationRequest sends it as an int64 parameter, and nothing when there is none', () => {
    const sampling = { max_tokens: 8, temperature: 0, top_p: 1 };
    expect(generationRequest(chat, 'r', ['hi'], [sampling], false, 2).parameters).toEqual({ priority: { int64_param: 2 } });
    expect(generationRequest(chat, 'r', ['hi'], [sampling], false).parameters).toBeUndefined();
  });

  it('the embedding batcher batches callers of different priorities apart, each call carrying its priority', async () => {
    const calls: ModelInferRequest[] = [];
    const triton = {
      modelInfer: (request: ModelInferRequest): Promise<ModelInferResponse> => {
        calls.push(request);
        const n = Number(request.inputs![0].shape![0]);
        return Promise.resolve(inferResponse({ model_name: 'e', model_version: '1', outputs: [outputTensor('embedding', 'FP32', [n, 1])], raw_output_contents: [Buffer.alloc(4 * n)] }));
      },
    } as unknown as TritonClient;
    const embedder = new EmbeddingBatcher(triton, 1);
    const model = { id: 'e', version: '1', maxBatchSize: 8 } as ModelInfo;
    await Promise.all([embedder.embed(model, ['a'], 1), embedder.embed(model, ['b']), embedder.embed(model, ['c'], 1), embedder.embed(model, ['d'])]);
    expect(calls.map((c) => [c.inputs![0].shape![0], c.parameters?.priority])).toEqual(
      expect.arrayContaining([
        [2, { int64_param: 1 }],
        [2, undefined],
      ]),
    );
    expect(calls).toHaveLength(2);
  });
});
