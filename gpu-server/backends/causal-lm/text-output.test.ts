import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { MODEL_REPOSITORY } from './chat-requests';
import { IncrementalDetokenizer, OutputText } from './text-output';

const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(path.join(MODEL_REPOSITORY, 'sluice-chat', '1', 'tokenizer.json'), 'utf8')), {});
const decode = (ids: number[]) => (ids.length === 0 ? '' : tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false }));

describe('IncrementalDetokenizer', () => {
  it('holds back a character split across tokens until its last byte arrives', () => {
    const text = 'a ☕ and 日本語 ok';
    const ids = tokenizer.encode(text).ids;
    // ☕ (3 UTF-8 bytes) and the CJK characters are not single tokens in a 4096-token vocabulary.
    expect(ids.length).toBeGreaterThan(text.length / 2);
    const detokenizer = new IncrementalDetokenizer(decode);
    const pieces = ids.map((id) => detokenizer.push(id));
    expect(pieces.some((p) => p === '')).toBe(true);
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    expect(pieces.join('') + detokenizer.flush()).toBe(text);
  });

  it('flushes incomplete bytes at the end as U+FFFD', () => {
    const ids = tokenizer.encode('☕').ids;
    const detokenizer = new IncrementalDetokenizer(decode);
    expect(detokenizer.push(ids[0])).toBe('');
    expect(detokenizer.flush()).toContain('\uFFFD');
  });
});

describe('IncrementalDetokenizer with a Llama-style (Metaspace) decoder', () => {
  // Such decoders turn "▁" into a space and strip the text's leading space: "▁Paris" alone decodes as "Paris".
  const vocab = ['▁The', '▁capital', '▁is', '▁Paris', '.'];
  const metaspace = (ids: number[]) =>
    ids
      .map((id) => vocab[id])
      .join('')
      .replace(/▁/g, ' ')
      .replace(/^ /, '');

  it('keeps the space before the first generated word, using the prompt as left context (as vLLM does)', () => {
    const detokenizer = new IncrementalDetokenizer(metaspace, [0, 1, 2]);
    expect([3, 4].map((id) => detokenizer.push(id)).join('') + detokenizer.flush()).toBe(' Paris.');
  });

  it('would lose it without the prompt: the case the context exists for', () => {
    const detokenizer = new IncrementalDetokenizer(metaspace);
    expect([3, 4].map((id) => detokenizer.push(id)).join('') + detokenizer.flush()).toBe('Paris.');
  });
});

describe('OutputText', () => {
  it('cuts at the first stop string and holds back a possible start of one', () => {
    const out = new OutputText(['END', '\n\n']);
    expect(out.append('hello E')).toBe(false);
    expect(out.take(false)).toBe('hello ');
    expect(out.append('N')).toBe(false);
    expect(out.take(false)).toBe('');
    expect(out.append('Dless')).toBe(true);
    expect(out.take(false)).toBe('');
    expect(out.all()).toBe('hello ');
  });

  it('releases a held-back tail once it cannot become a stop string', () => {
    const out = new OutputText(['END']);
    out.append('the E');
    expect(out.take(false)).toBe('the ');
    out.append('ast');
    expect(out.take(false)).toBe('East');
    out.append(' E');
    expect(out.take(true)).toBe(' E');
  });

  it('finds the earliest of several stop strings', () => {
    const out = new OutputText(['cd', 'b']);
    expect(out.append('abcd')).toBe(true);
    expect(out.all()).toBe('a');
  });
});
