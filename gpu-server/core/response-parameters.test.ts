import { responseParameters, responseParameterTensor } from './response-parameters';
import { splitBatch } from './tensor';

describe('response parameters reported as tensors', () => {
  it('survive the batch split: each request gets its own rows, a request of several rows their total and each row', () => {
    const tensor = responseParameterTensor('sluice_cached_prompt_tokens', [16, 0, 32, 48], true);
    const [first, second] = splitBatch(tensor, [1, 3]);
    const text = { name: 'text_output', datatype: 'BYTES' as const, shape: [1, 1], data: Buffer.alloc(4) };
    expect(
      responseParameters(
        new Map([
          ['text_output', text],
          [first.name, first],
        ]),
      ),
    ).toEqual({ sluice_cached_prompt_tokens: 16 });
    expect(responseParameters(new Map([[second.name, second]]))).toEqual({ sluice_cached_prompt_tokens: 80, sluice_cached_prompt_tokens_rows: '0,32,48' });
    expect(responseParameters(new Map([['text_output', text]]))).toEqual({});
  });
});
