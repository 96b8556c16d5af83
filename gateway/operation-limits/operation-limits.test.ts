import { parse, print } from 'graphql';
import { getIntrospectionQuery } from 'graphql';
import { operationLimits } from './feature';
import { checkShape, checkSource, checkSourceExpansion, expandedFieldCount, measureOperation, type OperationLimits } from './limits';

const limits: OperationLimits = { maxDocumentBytes: 200, maxTokens: 30, maxExpandedFields: 100, maxDepth: 3, maxAliases: 1, maxRootFields: 2 };

describe('measureOperation', () => {
  it('counts depth, aliases and root fields, with fragments expanded where they are spread', () => {
    const document = parse(`
      query Q { a: me { ...U } models { id } }
      fragment U on User { b: documents { chunks { text } } }
      query Other { me { id } }`);
    expect(measureOperation(document, 'Q')).toEqual({ depth: 4, aliases: 2, rootFields: 2 });
    expect(measureOperation(document, 'Other')).toEqual({ depth: 2, aliases: 0, rootFields: 1 });
  });

  it('counts root fields inside inline fragments and spreads on the root type', () => {
    const document = parse('query { ... on Query { me { id } models { id } } ...R } fragment R on Query { documents { id } }');
    expect(measureOperation(document).rootFields).toBe(3);
  });
});

describe('checkShape', () => {
  it('names every limit passed, its maximum and what the operation had', () => {
    const errors = checkShape({ depth: 4, aliases: 2, rootFields: 3 }, limits);
    expect(errors.map((e) => [e.extensions.code, e.extensions.limit, e.extensions.max, e.extensions.got])).toEqual([
      ['OPERATION_LIMIT', 'depth', 3, 4],
      ['OPERATION_LIMIT', 'aliases', 1, 2],
      ['OPERATION_LIMIT', 'rootFields', 2, 3],
    ]);
    expect(errors[0].message).toBe('the operation is nested too deeply: expected at most 3, got 4');
    expect(checkShape({ depth: 3, aliases: 1, rootFields: 2 }, limits)).toEqual([]);
  });
});

describe('checkSource', () => {
  it('refuses a document over the byte limit before reading it', () => {
    expect(checkSource(`{ me { id } } # ${'x'.repeat(200)}`, limits)?.extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'documentBytes', max: 200 });
  });

  it('refuses a document with more lexical tokens than allowed, counting no further than one past the limit', () => {
    const error = checkSource(`{ ${'a '.repeat(40)}}`, limits);
    expect(error?.extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'tokens', max: 30, got: 31 });
  });

  it('leaves lexical errors to the parser', () => {
    expect(checkSource('{ me { id } "unterminated', limits)).toBeUndefined();
  });
});

describe('expandedFieldCount', () => {
  /** 40 fragments, each spreading the next twice: a few hundred bytes that expand to 2^40 fields. */
  const exponential = parse(['query { ...F0 }', ...Array.from({ length: 40 }, (_, i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`), 'fragment F40 on Query { me { id } }'].join('\n'));

  it('counts the fields of the expanded document without expanding it, so an exponential one is measured at once and refused', () => {
    expect(expandedFieldCount(exponential)).toBe(2 ** 40 * 2);
    expect(checkSourceExpansion(print(exponential), limits)?.extensions).toMatchObject({ code: 'OPERATION_LIMIT', limit: 'expandedFields', max: 100 });
  });

  it('leaves room for the introspection query under the default limit', () => {
    expect(expandedFieldCount(parse(getIntrospectionQuery()))).toBeLessThan(5_000);
    expect(expandedFieldCount(parse('{ me { ...U } } fragment U on User { id email }'))).toBe(3);
  });
});

describe('operationLimits, on the source', () => {
  const { requestDidStart } = operationLimits(limits);
  const check = (query: string) => requestDidStart?.({ query })?.extensions.limit;

  it('refuses a text over a limit every time it is sent, and passes a text that passed every time', () => {
    const tooManyTokens = `{ ${'a '.repeat(40)}}`;
    const fine = '{ me { id } }';
    expect([check(tooManyTokens), check(fine), check(tooManyTokens), check(fine)]).toEqual(['tokens', undefined, 'tokens', undefined]);
  });

  it('checks a passed text against these limits, not another feature’s', () => {
    const long = `{ ${'a '.repeat(40)}}`;
    expect(operationLimits({ ...limits, maxTokens: 100 }).requestDidStart?.({ query: long })).toBeUndefined();
    expect(check(long)).toBe('tokens');
  });
});
