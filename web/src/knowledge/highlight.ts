/**
 * Splits `text` into the parts that match a word of `query` and the parts
 * between them, so a search hit can show why it matched (each match in a
 * <mark>). Words shorter than three letters ("a", "of") and the commonest
 * question words ("the", "does") are not marked: they match everywhere and
 * say nothing. Matching ignores case.
 */
export interface Segment {
  text: string;
  match: boolean;
  /** Where the piece starts in the text (a stable key for it). */
  start: number;
}

const FILLER = new Set([
  'the',
  'and',
  'for',
  'are',
  'was',
  'were',
  'does',
  'did',
  'has',
  'have',
  'what',
  'which',
  'who',
  'where',
  'when',
  'how',
  'why',
  'this',
  'that',
  'with',
  'from',
  'into',
  'about',
]);

export function highlight(text: string, query: string): Segment[] {
  const words = [...new Set(query.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) ?? [])].filter((word) => !FILLER.has(word));
  if (words.length === 0 || text === '') return text === '' ? [] : [{ text, match: false, start: 0 }];
  // Words are letters and digits only, so they need no escaping; longest first, so "indexes" is marked whole rather than as "index" + "es".
  const pattern = new RegExp(`(${words.sort((a, b) => b.length - a.length).join('|')})`, 'giu');
  let start = 0;
  return text
    .split(pattern)
    .filter((part) => part !== '')
    .map((part) => {
      const segment = { text: part, match: words.includes(part.toLowerCase()), start };
      start += part.length;
      return segment;
    });
}
