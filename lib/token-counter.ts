/**
 * Token counts in r50k_base (GPT-2's byte-level BPE), the encoding the
 * embedding model sluice-embed tokenizes with (its config.pbtxt: `tokenizer`
 * r50k_base, `max_tokens` 256). Counting here with the same encoding is what
 * lets the chunker promise that a chunk is embedded whole rather than cut off.
 *
 * Special-token strings such as `<|endoftext|>` in user text are counted as
 * plain text, as the embedding backend encodes them: a document may contain
 * them, and refusing it for that would be wrong.
 */
import { R50K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/cjs/encodingParams/constants';

type R50k = typeof import('gpt-tokenizer/cjs/encoding/r50k_base');

/** No special tokens recognised: every string is plain text. */
const PLAIN = { disallowedSpecial: new Set<string>() };

/**
 * Pre-tokens longer than this many characters are counted window by window.
 * BPE's cost grows with the square of a pre-token's length (512 KB of one
 * letter takes gpt-tokenizer over a minute), and only degenerate text (a run
 * of one character, a blob without digits or punctuation) has such pre-tokens;
 * for them the count may differ from the encoder's by a token per window.
 */
const EXACT_PRETOKEN_CHARS = 1000;

let encoding: R50k | undefined;

/** Loaded on first use: the ranks are megabytes, and importing this module should not pay for them. */
function r50k(): R50k {
  encoding ??= require('gpt-tokenizer/cjs/encoding/r50k_base') as R50k;
  return encoding;
}

/** How many r50k_base tokens `text` encodes to. */
export function countTokens(text: string): number {
  let count = 0;
  for (const [piece] of text.matchAll(R50K_TOKEN_SPLIT_REGEX)) count += pretokenTokens(piece);
  return count;
}

/** One pre-token of a text and the number of tokens BPE makes of it there. */
export interface Pretoken {
  text: string;
  tokens: number;
}

/**
 * The text's pre-tokens (r50k_base splits text into these before BPE, and BPE
 * never merges across them, so a cut between two is never inside a token), in
 * order, each with its token count: concatenated they are the text, and their
 * counts add up to countTokens(text).
 */
export function pretokenize(text: string): Pretoken[] {
  // Prose repeats its pre-tokens (" the", ".", "\n") a great deal.
  const counted = new Map<string, number>();
  const pieces: Pretoken[] = [];
  for (const [piece] of text.matchAll(R50K_TOKEN_SPLIT_REGEX)) {
    let tokens = counted.get(piece);
    if (tokens === undefined) {
      tokens = pretokenTokens(piece);
      counted.set(piece, tokens);
    }
    pieces.push({ text: piece, tokens });
  }
  return pieces;
}

function pretokenTokens(piece: string): number {
  if (piece.length <= EXACT_PRETOKEN_CHARS) return r50k().encode(piece, PLAIN).length;
  let count = 0;
  for (let from = 0; from < piece.length; ) {
    let to = Math.min(piece.length, from + EXACT_PRETOKEN_CHARS);
    // Never between the two halves of a surrogate pair.
    if (to < piece.length && /[\uD800-\uDBFF]/.test(piece[to - 1])) to -= 1;
    count += r50k().encode(piece.slice(from, to), PLAIN).length;
    from = to;
  }
  return count;
}
