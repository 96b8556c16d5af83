import { buildSchema, parse } from 'graphql';
import { DocumentMemo } from './document-memo';

describe('DocumentMemo', () => {
  const schema = buildSchema('type Query { a: Int }');
  const document = parse('{ a }');

  it('computes once per document and key, and again for another key or another document object', () => {
    const memo = new DocumentMemo<string>();
    let computed = 0;
    const compute = (value: string) => () => `${value}#${++computed}`;
    expect(memo.get(schema, document, 'k', compute('x'))).toBe('x#1');
    expect(memo.get(schema, document, 'k', compute('y'))).toBe('x#1');
    expect(memo.get(schema, document, 'other', compute('z'))).toBe('z#2');
    expect(memo.get(schema, parse('{ a }'), 'k', compute('w'))).toBe('w#3');
  });

  it('forgets what it had for a document when it is asked under another schema', () => {
    const memo = new DocumentMemo<number>();
    memo.get(schema, document, 'k', () => 1);
    expect(memo.get(buildSchema('type Query { a: Int }'), document, 'k', () => 2)).toBe(2);
    expect(memo.get(schema, document, 'k', () => 3)).toBe(3);
  });

  it('keeps at most perDocument entries for one document, dropping the oldest', () => {
    const memo = new DocumentMemo<number>(2);
    memo.get(schema, document, 'a', () => 1);
    memo.get(schema, document, 'b', () => 2);
    memo.get(schema, document, 'c', () => 3);
    expect(memo.get(schema, document, 'a', () => 4)).toBe(4);
    expect(memo.get(schema, document, 'c', () => 5)).toBe(3);
  });
});
