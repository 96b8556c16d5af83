import { codedError, ErrorCode } from '../../lib/errors';
import { Answers } from './answers';
import type { Document } from './document-store';
import type { GenerationInput, InferenceClient } from './inference-client';
import type { ModelChoice } from './model-choice';
import type { Hit, Retrieval } from './retrieval';

const doc = { id: 'd1', title: 'Guide', ownerId: 'u1' } as Document;
const hit = (i: number, score: number): Hit => ({ score, document: doc, chunk: { index: i, text: `passage number ${i}`, heading: 'Guide', tokenCount: 4, document: doc } });

/** Inference that refuses prompts with more than `maxSources` numbered sources as longer than its context. */
function inference(maxSources: number) {
  const prompts: string[] = [];
  const client = {
    async complete(_header: string, input: GenerationInput) {
      const prompt = input.messages.map((m) => m.content).join('\n');
      prompts.push(prompt);
      const sources = (prompt.match(/^\[\d+\]/gm) ?? []).length;
      if (sources > maxSources) throw codedError(ErrorCode.BadUserInput, 'the model refused the request: the prompt has 2000 tokens, but the context length is 1024');
      return { text: 'answer [1]', finishReason: 'STOP', usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2, promptCacheHitTokens: 0, promptCacheMissTokens: 1 }, model: { id: 'chat' } };
    },
  };
  return { client: client as unknown as InferenceClient, prompts };
}

function answers(hits: Hit[], maxSources: number) {
  const retrieval = { search: async () => hits } as unknown as Retrieval;
  const models = { contextLength: async () => 4096 } as unknown as ModelChoice;
  const fake = inference(maxSources);
  return { answers: new Answers(retrieval, fake.client, models, { minScore: 0.15, defaultMaxTokens: 50, promptTokenMarginPercent: 150, fallbackContextLength: 4096 }), prompts: fake.prompts };
}

describe('Answers', () => {
  it('retries with one source fewer while the model refuses the prompt as longer than its context, and cites what was kept', async () => {
    const { answers: service, prompts } = answers([hit(0, 0.9), hit(1, 0.8), hit(2, 0.7)], 1);
    const answer = await service.ask('u1', 'header', 'how?', 3);
    expect(prompts).toHaveLength(3);
    expect(answer.citations.map((c) => [c.number, c.chunk.index])).toEqual([[1, 0]]);
    expect(answer.grounded).toBe(true);
  });

  it('drops sources below the minimum score, and says so without generating when none is left', async () => {
    const { answers: service, prompts } = answers([hit(0, 0.1)], 5);
    const answer = await service.ask('u1', 'header', 'how?', 3);
    expect(answer).toMatchObject({ grounded: false, citations: [], usage: null });
    expect(prompts).toEqual([]);
  });

  it('passes on an error that is not about the context, without retrying', async () => {
    const retrieval = { search: async () => [hit(0, 0.9), hit(1, 0.8)] } as unknown as Retrieval;
    const models = { contextLength: async () => 4096 } as unknown as ModelChoice;
    let calls = 0;
    const failing = {
      complete: async () => {
        calls++;
        throw codedError(ErrorCode.InsufficientBalance, 'short');
      },
    } as unknown as InferenceClient;
    const service = new Answers(retrieval, failing, models, { minScore: 0, defaultMaxTokens: 50, promptTokenMarginPercent: 150, fallbackContextLength: 4096 });
    await expect(service.ask('u1', 'header', 'how?', 2)).rejects.toMatchObject({ extensions: { code: 'INSUFFICIENT_BALANCE' } });
    expect(calls).toBe(1);
  });
});
