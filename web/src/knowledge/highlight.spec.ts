import { describe, expect, it } from 'vitest';
import { highlight } from './highlight';

describe('highlight', () => {
  it('marks every word of the query in the text, ignoring case', () => {
    expect(highlight('Rivers flow. The river Nile.', 'nile RIVER')).toEqual([
      { text: 'River', match: true },
      { text: 's flow. The ', match: false },
      { text: 'river', match: true },
      { text: ' ', match: false },
      { text: 'Nile', match: true },
      { text: '.', match: false },
    ]);
  });

  it('leaves out words under three letters, and matches only letters and digits of the query', () => {
    expect(highlight('a (b) of c++', 'of a (b) c++')).toEqual([{ text: 'a (b) of c++', match: false }]);
    expect(highlight('cost: $1.50 (est.)', '$1.50 (est.)')).toEqual([
      { text: 'cost: $1.50 (', match: false },
      { text: 'est', match: true },
      { text: '.)', match: false },
    ]);
  });

  it('returns the text unmarked for an empty query, and nothing for an empty text', () => {
    expect(highlight('hello', '  ')).toEqual([{ text: 'hello', match: false }]);
    expect(highlight('', 'hello')).toEqual([]);
  });
});
