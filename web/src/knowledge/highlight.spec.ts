import { describe, expect, it } from 'vitest';
import { highlight } from './highlight';

describe('highlight', () => {
  it('marks every word of the query in the text, ignoring case', () => {
    expect(highlight('Rivers flow. The river Nile.', 'nile RIVER')).toEqual([
      { text: 'River', match: true, start: 0 },
      { text: 's flow. The ', match: false, start: 5 },
      { text: 'river', match: true, start: 17 },
      { text: ' ', match: false, start: 22 },
      { text: 'Nile', match: true, start: 23 },
      { text: '.', match: false, start: 27 },
    ]);
  });

  it('leaves out words under three letters and filler words, and matches only letters and digits of the query', () => {
    expect(
      highlight('The Nile flows.', 'Where does the Nile flow?')
        .filter((s) => s.match)
        .map((s) => s.text),
    ).toEqual(['Nile', 'flow']);
    expect(highlight('a (b) of c++', 'of a (b) c++')).toEqual([{ text: 'a (b) of c++', match: false, start: 0 }]);
    expect(highlight('cost: $1.50 (est.)', '$1.50 (est.)')).toEqual([
      { text: 'cost: $1.50 (', match: false, start: 0 },
      { text: 'est', match: true, start: 13 },
      { text: '.)', match: false, start: 16 },
    ]);
  });

  it('returns the text unmarked for an empty query, and nothing for an empty text', () => {
    expect(highlight('hello', '  ')).toEqual([{ text: 'hello', match: false, start: 0 }]);
    expect(highlight('', 'hello')).toEqual([]);
  });
});
