import { OpenAiError } from './errors';
import { paramForChatField, paramForEmbeddingField, parseChatCompletionRequest, parseEmbeddingsRequest } from './protocol';

const MESSAGES = [{ role: 'user', content: 'hi' }];

/** The OpenAI error a parse throws, as the client would read it. */
function refusal(parse: () => unknown): { status: number; param: string | null; code: string | null; message: string } {
  try {
    parse();
  } catch (error) {
    if (error instanceof OpenAiError) return { status: error.status, param: error.param, code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected the request to be refused');
}

describe('parseChatCompletionRequest', () => {
  it("maps OpenAI fields to the graph's CompletionInput, text parts joined and developer read as system", () => {
    const request = parseChatCompletionRequest({
      model: 'm',
      messages: [
        { role: 'developer', content: 'be brief' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'a ' },
            { type: 'text', text: 'b' },
          ],
          name: 'ann',
        },
      ],
      max_completion_tokens: 7,
      max_tokens: 99,
      temperature: 0.5,
      top_p: 0.9,
      seed: 42,
      stop: 'END',
      stream: true,
      stream_options: { include_usage: true },
      user: 'u-1',
      n: 1,
      frequency_penalty: 0,
      tools: [],
      response_format: { type: 'text' },
    });
    expect(request).toEqual({
      input: {
        model: 'm',
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'a b' },
        ],
        maxTokens: 7,
        temperature: 0.5,
        topP: 0.9,
        seed: 42,
        stop: ['END'],
      },
      stream: true,
      includeUsage: true,
    });
  });

  it('leaves out what the request leaves out, so the graph applies its defaults', () => {
    expect(parseChatCompletionRequest({ model: 'm', messages: MESSAGES, temperature: null, stop: null })).toEqual({ input: { model: 'm', messages: MESSAGES }, stream: false, includeUsage: false });
  });

  it.each([
    [{ messages: MESSAGES }, 'model', 'model expects a non-empty string, but got nothing'],
    [{ model: 'm', messages: [] }, 'messages', 'messages expects a non-empty array of messages, but got []'],
    [{ model: 'm', messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].role', 'messages[0].role expects one of system, developer, user, assistant (Sluice serves no tools), but got "tool"'],
    [
      { model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] },
      'messages[0].content[0]',
      'messages[0].content[0] expects a text part ({"type": "text", "text": "..."}): Sluice\'s models read text only, but got a part of type "image_url"',
    ],
    [{ model: 'm', messages: [{ role: 'assistant', content: null }] }, 'messages[0].content', 'messages[0].content expects a string or an array of text parts, but got null'],
    [{ model: 'm', messages: MESSAGES, n: 2 }, 'n', 'n is not supported by Sluice: expected it absent, null or its default, but got 2'],
    [{ model: 'm', messages: MESSAGES, tools: [{ type: 'function' }] }, 'tools', 'tools is not supported by Sluice: expected it absent, null or its default, but got [{"type":"function"}]'],
    [{ model: 'm', messages: MESSAGES, logprobs: true }, 'logprobs', 'logprobs is not supported by Sluice: expected it absent, null or its default, but got true'],
    [{ model: 'm', messages: MESSAGES, max_tokens: 1.5 }, 'max_tokens', 'max_tokens expects an integer, but got 1.5'],
    [{ model: 'm', messages: MESSAGES, temperature: '1' }, 'temperature', 'temperature expects a number, but got "1"'],
    [{ model: 'm', messages: MESSAGES, seed: 2 ** 40 }, 'seed', 'seed expects an integer from -2147483648 to 2147483647, but got 1099511627776'],
    [{ model: 'm', messages: MESSAGES, stop: [1] }, 'stop', 'stop expects a string or an array of strings, but got [1]'],
    [{ model: 'm', messages: MESSAGES, stream_options: { include_usage: true } }, 'stream_options', 'stream_options is only allowed when stream is true'],
    [[], 'body', 'the request body expects a JSON object, but got []'],
  ])('refuses %j with 400 naming %s', (body, param, message) => {
    expect(refusal(() => parseChatCompletionRequest(body))).toMatchObject({ status: 400, param, message });
  });
});

describe('parseEmbeddingsRequest', () => {
  it('takes a string or an array of strings, float by default', () => {
    expect(parseEmbeddingsRequest({ model: 'e', input: 'x' })).toEqual({ model: 'e', input: { texts: ['x'] }, encoding: 'float' });
    expect(parseEmbeddingsRequest({ model: 'e', input: ['x', 'y'], encoding_format: 'base64', user: 'u' })).toEqual({ model: 'e', input: { texts: ['x', 'y'] }, encoding: 'base64' });
  });

  it('takes token ids, one array or an array of arrays, each array one text', () => {
    expect(parseEmbeddingsRequest({ model: 'e', input: [64, 7850] })).toEqual({ model: 'e', input: { tokens: [[64, 7850]], flat: true }, encoding: 'float' });
    expect(parseEmbeddingsRequest({ model: 'e', input: [[64], [0, 7850]] })).toEqual({ model: 'e', input: { tokens: [[64], [0, 7850]], flat: false }, encoding: 'float' });
  });

  it.each([
    [{ model: 'e', input: [] }, 'input', 'input expects a string, a non-empty array of strings, a non-empty array of token ids, or a non-empty array of non-empty arrays of token ids, but got []'],
    [
      { model: 'e', input: ['x', 1] },
      'input',
      'input expects a string, a non-empty array of strings, a non-empty array of token ids, or a non-empty array of non-empty arrays of token ids, but got ["x",1]',
    ],
    [{ model: 'e', input: [1, -2] }, 'input[1]', 'input[1] expects a token id (an integer from 0 to 2147483647), but got -2'],
    [{ model: 'e', input: [1, 2.5] }, 'input[1]', 'input[1] expects a token id (an integer from 0 to 2147483647), but got 2.5'],
    [{ model: 'e', input: [[1], [2, 2 ** 31]] }, 'input[1][1]', 'input[1][1] expects a token id (an integer from 0 to 2147483647), but got 2147483648'],
    [{ model: 'e', input: [[1], ['x']] }, 'input[1][0]', 'input[1][0] expects a token id (an integer from 0 to 2147483647), but got "x"'],
    [{ model: 'e', input: [[1], []] }, 'input[1]', 'input[1] expects a non-empty array of token ids, but got []'],
    [{ model: 'e', input: 'x', encoding_format: 'int8' }, 'encoding_format', 'encoding_format expects "float" or "base64", but got "int8"'],
  ])('refuses %j with 400 naming %s', (body, param, message) => {
    expect(refusal(() => parseEmbeddingsRequest(body))).toMatchObject({ status: 400, param, message });
  });

  it('refuses dimensions as unsupported', () => {
    expect(refusal(() => parseEmbeddingsRequest({ model: 'e', input: 'x', dimensions: 64 }))).toMatchObject({ status: 400, param: 'dimensions', code: 'unsupported_parameter' });
  });
});

it("names OpenAI's parameter for the graph's field in an error", () => {
  expect(paramForChatField('input.maxTokens')).toBe('max_tokens');
  expect(paramForChatField('input.topP')).toBe('top_p');
  expect(paramForChatField('input.messages[2].role')).toBe('messages[2].role');
  expect(paramForChatField('input.stop[1]')).toBe('stop[1]');
  const texts = paramForEmbeddingField({ texts: ['a'] });
  expect(texts('texts[3]')).toBe('input[3]');
  expect(texts('model')).toBe('model');
  expect(paramForEmbeddingField({ tokens: [[1], [2]], flat: false })('tokens[1][0]')).toBe('input[1][0]');
  const flat = paramForEmbeddingField({ tokens: [[1, 2]], flat: true });
  expect(flat('tokens[0][1]')).toBe('input[1]');
  expect(flat('tokens[0]')).toBe('input');
  expect(flat('tokens')).toBe('input');
});
