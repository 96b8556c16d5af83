/**
 * Splits a text or Markdown document into chunks for embedding and for RAG
 * prompts, measured in the embedding model's own tokens (r50k_base, see
 * lib/token-counter.ts), so that no chunk is silently cut off by the model.
 *
 * - Sections: ATX headings (`#` to `######`, not inside ``` or ~~~ fences)
 *   start a section; a chunk never spans two. Text before the first heading,
 *   or a document without headings, is a section with no heading.
 * - Heading trail: each chunk carries the headings above it ("Setup > Install")
 *   in `heading`, and its `text` starts with that trail and a blank line, so
 *   the embedding and the answering model both see where the text comes from.
 *   The trail is part of `text`, hence of `tokenCount` and of the budget; it
 *   takes at most half of `maxTokens` (a longer one keeps its innermost end,
 *   after "…"), so there is always room for the section's own text.
 * - Cuts fall between words, at the strongest boundary (paragraph, then line,
 *   then sentence, then word) that still leaves the chunk at least half full;
 *   never inside a token. A word longer than a chunk is cut between its
 *   pre-tokens, and a pre-token longer than that between characters, in
 *   pieces of `overlapTokens` tokens (or a whole chunk's worth without
 *   overlap), so even such a word overlaps like any other text.
 * - Overlap: each chunk of a section after the first starts with the last
 *   whole words of the previous one, up to `overlapTokens` tokens.
 * - Chunk text is trimmed; CRLF and CR line ends read as LF; sections with no
 *   text are dropped. The same input always gives the same chunks.
 *
 * The document is tokenized once, into pre-tokens with their counts; a
 * chunk's `tokenCount` is the sum of its parts' (exact: BPE never merges
 * across pre-tokens), and only a chunk holding pieces of a pre-token cut
 * between characters is counted again as written.
 */
import { countTokens, pretokenize, type Pretoken } from '../../lib/token-counter';

export interface Chunk {
  index: number;
  text: string;
  /** The heading trail, outermost first ("Setup > Install"); null before the first heading. */
  heading: string | null;
  /** r50k_base tokens of `text`, at most `maxTokens`. */
  tokenCount: number;
}

export interface ChunkOptions {
  maxTokens: number;
  overlapTokens: number;
}

/** Room for a heading trail (up to half) and some text beside it. */
const MIN_MAX_TOKENS = 16;

export function chunkDocument(content: string, options: ChunkOptions): Chunk[] {
  checkOptions(options);
  const chunks: Chunk[] = [];
  for (const section of markdownSections(content)) {
    for (const piece of chunkSection(section, options)) chunks.push({ index: chunks.length, ...piece });
  }
  return chunks;
}

function checkOptions({ maxTokens, overlapTokens }: ChunkOptions): void {
  if (!Number.isInteger(maxTokens) || maxTokens < MIN_MAX_TOKENS) {
    throw new TypeError(`chunkDocument expects maxTokens to be an integer of at least ${MIN_MAX_TOKENS} (room for a heading trail and text), but got ${maxTokens}`);
  }
  if (!Number.isInteger(overlapTokens) || overlapTokens < 0 || overlapTokens * 2 >= maxTokens) {
    throw new TypeError(
      `chunkDocument expects overlapTokens to be an integer from 0 to less than half of maxTokens (${maxTokens}), so that each chunk brings more new text than it repeats, but got ${overlapTokens}`,
    );
  }
}

// ─── Sections ────────────────────────────────────────────────────────────────

interface Section {
  trail: string | null;
  body: string;
}

/** CommonMark's ATX heading: up to 3 spaces of indent, 1-6 `#`, then a space or the line's end. */
const ATX_HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$/;
const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;

function markdownSections(content: string): Section[] {
  const lines = content
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n')
    .split('\n');
  const sections: Section[] = [];
  const headings: { level: number; title: string }[] = [];
  let body: string[] = [];
  // The opening fence (``` or ~~~, 3 or more) while inside a code block: `#` lines there are code.
  let fence: string | null = null;

  const endSection = () => {
    const text = body.join('\n').trim();
    if (text !== '')
      sections.push({
        trail:
          headings
            .map((h) => h.title)
            .filter((title) => title !== '')
            .join(' > ') || null,
        body: text,
      });
    body = [];
  };

  for (const line of lines) {
    if (fence !== null) {
      const close = FENCE_CLOSE.exec(line);
      if (close && close[1][0] === fence[0] && close[1].length >= fence.length) fence = null;
      body.push(line);
      continue;
    }
    const open = FENCE_OPEN.exec(line);
    // A backtick fence's info string cannot contain a backtick: ```x``` is inline code, not a fence.
    if (open && !(open[1][0] === '`' && open[2].includes('`'))) {
      fence = open[1];
      body.push(line);
      continue;
    }
    const heading = ATX_HEADING.exec(line);
    if (heading) {
      endSection();
      const level = heading[1].length;
      while (headings.length > 0 && headings[headings.length - 1].level >= level) headings.pop();
      // An optional closing run of `#` (after a space) is not part of the title.
      headings.push({ level, title: (heading[2] ?? '').replace(/(?:^|[ \t]+)#+$/, '').trim() });
      continue;
    }
    body.push(line);
  }
  endSection();
  return sections;
}

// ─── Units: the pieces a chunk is made of ───────────────────────────────────

/** How good a place to end a chunk the boundary before a unit is; higher is better. */
enum Break {
  None,
  Word,
  Sentence,
  Line,
  Paragraph,
}

interface Unit {
  /** With the whitespace before it: units concatenated give back the text. */
  text: string;
  /** Tokens of `text` where it stands in the text. */
  tokens: number;
  before: Break;
  /**
   * A piece of a pre-token cut between characters: BPE merges across such
   * cuts when the pieces are side by side again, so a chunk holding one is
   * counted as written; any other chunk's count is the sum of its units'.
   */
  cutApart: boolean;
}

const SENTENCE_END = /[.!?…。！？]["'’”)\]]*$/u;
/** Scripts written without spaces still end sentences: a cut may follow these with no space. */
const SPACELESS_SENTENCE_END = /[。！？]$/u;

/**
 * The text's words (a word is its leading whitespace and the pre-tokens up to
 * the next whitespace), each with its token count. A word of more than
 * `limit` tokens is given as its pre-tokens instead, and a pre-token of more
 * than `limit` as pieces of `pieceLimit` tokens (whitespace-only pieces, which
 * carry no words, are dropped).
 */
function textUnits(text: string, limit: number, pieceLimit: number): Unit[] {
  const units: Unit[] = [];
  let word: Pretoken[] = [];
  let wordTokens = 0;
  let wordHasText = false;
  let previous: string | undefined;

  const endWord = () => {
    const wordText = word.map((p) => p.text).join('');
    const before = breakBefore(wordText, previous);
    if (wordTokens <= limit) {
      units.push({ text: wordText, tokens: wordTokens, before, cutApart: false });
    } else {
      let pieceText = '';
      let pieceTokens = 0;
      let pieceBefore = before;
      for (const pretoken of word) {
        pieceText += pretoken.text;
        pieceTokens += pretoken.tokens;
        // Leading whitespace goes with the first pre-token that has text.
        if (!/\S/.test(pretoken.text)) continue;
        const pieces =
          pieceTokens <= limit
            ? [{ text: pieceText, tokens: pieceTokens, cutApart: false }]
            : splitByTokens(pieceText, pieceTokens, pieceLimit)
                .filter((piece) => /\S/.test(piece.text))
                .map((piece) => ({ ...piece, cutApart: true }));
        for (const piece of pieces) {
          units.push({ ...piece, before: pieceBefore });
          pieceBefore = Break.None;
        }
        pieceText = '';
        pieceTokens = 0;
      }
    }
    previous = wordText;
    word = [];
    wordTokens = 0;
    wordHasText = false;
  };

  for (const pretoken of pretokenize(text)) {
    if (wordHasText && (/^\s/.test(pretoken.text) || SPACELESS_SENTENCE_END.test(word[word.length - 1].text))) endWord();
    word.push(pretoken);
    wordTokens += pretoken.tokens;
    wordHasText ||= /\S/.test(pretoken.text);
  }
  if (word.length > 0) endWord();
  return units;
}

function breakBefore(word: string, previous: string | undefined): Break {
  if (previous === undefined) return Break.None;
  const newlines = (/^\s*/.exec(word)?.[0].match(/\n/g) ?? []).length;
  if (newlines >= 2) return Break.Paragraph;
  if (newlines === 1) return Break.Line;
  if (SENTENCE_END.test(previous)) return Break.Sentence;
  return Break.Word;
}

/**
 * Cuts a text of `tokens` tokens between characters (code points) into
 * pieces of at most `limit` tokens each, counted alone; a single code point
 * (up to 4 tokens) is a piece even over a smaller limit. Each piece's length
 * is first guessed from the text's characters per token, then shrunk until it
 * fits: a few counts per piece, not one per character.
 */
function splitByTokens(text: string, tokens: number, limit: number): { text: string; tokens: number }[] {
  const chars = Array.from(text);
  const charsPerToken = chars.length / tokens;
  const pieces: { text: string; tokens: number }[] = [];
  let from = 0;
  while (from < chars.length) {
    let length = Math.min(chars.length - from, Math.max(1, Math.floor(limit * charsPerToken)));
    for (;;) {
      const piece = chars.slice(from, from + length).join('');
      const tokens = countTokens(piece);
      if (tokens <= limit || length === 1) {
        pieces.push({ text: piece, tokens });
        from += length;
        break;
      }
      length = Math.max(1, Math.min(length - 1, Math.floor((length * limit) / tokens)));
    }
  }
  return pieces;
}

// ─── Chunks of one section ──────────────────────────────────────────────────

function chunkSection(section: Section, { maxTokens, overlapTokens }: ChunkOptions): Omit<Chunk, 'index'>[] {
  const prefix = section.trail === null ? '' : `${shownTrail(section.trail, Math.floor(maxTokens / 2))}\n\n`;
  // The trail's cost in front of text: its blank line is two tokens there ("x"
  // stands for the text's first character, a pre-token of its own).
  const prefixTokens = prefix === '' ? 0 : countTokens(`${prefix}x`) - 1;
  const budget = maxTokens - prefixTokens;
  const pieceLimit = overlapTokens > 0 ? Math.min(overlapTokens, budget) : budget;
  const units = textUnits(section.body, budget, pieceLimit);
  const chunks: Omit<Chunk, 'index'>[] = [];

  /** The chunk of units [from, to), whose first unit counts `leadTokens` as written. */
  const chunkOf = (from: number, to: number, leadTokens: number) => {
    const text = prefix + joinUnits(units, from, to);
    let tokenCount = prefixTokens + leadTokens;
    for (let i = from + 1; i < to; i++) tokenCount += units[i].tokens;
    if (units.slice(from, to).some((unit) => unit.cutApart)) tokenCount = countTokens(text);
    return { text, heading: section.trail, tokenCount };
  };

  let start = 0; // the chunk's first unit (the previous chunk's tail, when overlapping)
  let fresh = 0; // the first unit no chunk holds yet
  while (fresh < units.length) {
    // A chunk's first unit loses its leading whitespace, which can change its
    // count (" inconvenience" is 1 token, "inconvenience" 4): count it as written.
    const lead = units[start].text.trimStart();
    const leadTokens = countTokens(lead);
    if (leadTokens > budget) {
      const pieces = splitByTokens(lead, leadTokens, pieceLimit).map((piece) => ({ ...piece, before: Break.None, cutApart: true }));
      units.splice(start, 1, ...pieces);
      if (start < fresh) fresh += pieces.length - 1;
      continue;
    }
    let used = leadTokens;
    let end = start + 1;
    while (end < units.length && used + units[end].tokens <= budget) used += units[end++].tokens;
    if (end <= fresh) {
      // The repeated tail leaves no room for the next unit: start afresh.
      start = fresh;
      continue;
    }
    let cut = bestCut(units, fresh, end, used, budget);
    let chunk = chunkOf(start, cut, leadTokens);
    // Pieces cut apart may count more side by side: give back units until the chunk fits.
    while (chunk.tokenCount > maxTokens && cut - 1 > fresh) chunk = chunkOf(start, --cut, leadTokens);
    if (chunk.tokenCount > maxTokens) {
      // Still over with one new unit: drop the repeated tail. A lone unit
      // fits, its count as written having been checked against the budget
      // above; were that ever wrong, failing beats looping forever.
      if (start === fresh) throw new Error(`chunkDocument made a chunk of one piece with ${chunk.tokenCount} tokens, over maxTokens ${maxTokens}: a bug in the chunker`);
      start = fresh;
      continue;
    }
    chunks.push(chunk);
    // The next chunk repeats this one's last whole units, up to overlapTokens, but never all of it.
    const previousStart = start;
    fresh = cut;
    start = cut;
    let repeated = 0;
    while (start - 1 > previousStart && repeated + units[start - 1].tokens <= overlapTokens) repeated += units[--start].tokens;
  }
  return chunks;
}

/**
 * Where to end a chunk that could hold the units before `end`, `used` tokens
 * in all: the section's end if it is there; else the strongest boundary (the
 * latest of equals) that keeps the chunk at least half full and past the
 * units an earlier chunk already holds.
 */
function bestCut(units: readonly Unit[], fresh: number, end: number, used: number, budget: number): number {
  if (end === units.length) return end;
  let best = end;
  let fill = used;
  for (let cut = end - 1; cut > fresh; cut--) {
    fill -= units[cut].tokens;
    if (fill * 2 < budget) break;
    if (units[cut].before > units[best].before) best = cut;
  }
  return best;
}

function joinUnits(units: readonly Unit[], from: number, to: number): string {
  return units
    .slice(from, to)
    .map((unit) => unit.text)
    .join('')
    .trim();
}

/**
 * The heading trail as a chunk's text shows it: whole when it takes at most
 * `cap` tokens with the blank line after it; else its innermost end after
 * "…", since the nearest headings say most about the text below them.
 */
function shownTrail(trail: string, cap: number): string {
  const room = cap - 2;
  if (countTokens(trail) <= room) return trail;
  const units = textUnits(trail, room, room);
  let from = units.length;
  let used = countTokens('…');
  while (from > 0 && used + units[from - 1].tokens <= room) used += units[--from].tokens;
  let shown = `…${joinUnits(units, from, units.length)}`;
  while (countTokens(shown) > room) shown = `…${joinUnits(units, ++from, units.length)}`;
  return shown;
}
