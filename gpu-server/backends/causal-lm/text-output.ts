/**
 * Turns generated token ids into text a piece at a time, the way vLLM's
 * incremental detokenizer does: each new token's text is the difference
 * between decoding a short window with and without it. While the window's
 * text ends in U+FFFD — a multi-byte UTF-8 character split across tokens —
 * nothing is emitted, so a stream never shows a broken character; the
 * concatenated pieces equal the decoding of all tokens at once.
 *
 * `OutputText` then applies stop strings: the text is cut at the first stop
 * string, and a tail that could still become one is held back from the
 * stream until it can be decided.
 */

export type Decode = (ids: number[]) => string;

/** Prompt tokens kept as left context, as vLLM does. */
const PROMPT_CONTEXT_TOKENS = 5;

export class IncrementalDetokenizer {
  private readonly ids: number[];
  private prefixOffset = 0;
  private readOffset: number;

  /**
   * `promptIds`: the last few become the window's left context, so the first
   * generated token decodes as it does after the prompt — tokenizers whose
   * decoder strips a leading space (Llama-style Metaspace) would otherwise
   * drop the space before the first word.
   */
  constructor(
    private readonly decode: Decode,
    promptIds: readonly number[] = [],
  ) {
    this.ids = promptIds.slice(-PROMPT_CONTEXT_TOKENS);
    this.readOffset = this.ids.length;
  }

  /** Adds one token; returns the text it completes (often '' while a character is incomplete). */
  push(id: number): string {
    this.ids.push(id);
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.decode(this.ids.slice(this.prefixOffset));
    if (text.length <= prefix.length || text.endsWith('\uFFFD')) return '';
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return text.slice(prefix.length);
  }

  /** The text still held back at the end of generation (incomplete bytes decode as U+FFFD). */
  flush(): string {
    const prefix = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return text.length > prefix.length ? text.slice(prefix.length) : '';
  }
}

export class OutputText {
  private text = '';
  private emitted = 0;
  /** True once a stop string was found (the text ends before it). */
  stopped = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Appends decoded text; returns true when a stop string now ends generation. */
  append(piece: string): boolean {
    if (this.stopped || piece === '') return this.stopped;
    const longest = Math.max(0, ...this.stops.map((s) => s.length));
    const from = Math.max(0, this.text.length - longest + 1);
    this.text += piece;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.text.indexOf(stop, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.stopped = true;
    }
    return this.stopped;
  }

  /** The text not yet taken that is certain (everything when `final` or stopped). */
  take(final: boolean): string {
    const end = final || this.stopped ? this.text.length : this.text.length - this.undecidedTail();
    if (end <= this.emitted) return '';
    const piece = this.text.slice(this.emitted, end);
    this.emitted = end;
    return piece;
  }

  /** The whole output so far. */
  all(): string {
    return this.text;
  }

  /** Length of the longest suffix of the text that is a proper prefix of a stop string. */
  private undecidedTail(): number {
    let tail = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.text.length - this.emitted); n > tail; n--) {
        if (this.text.endsWith(stop.slice(0, n))) {
          tail = n;
          break;
        }
      }
    }
    return tail;
  }
}
