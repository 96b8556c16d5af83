/**
 * Writes a Hugging Face `tokenizer.json` (byte-level BPE, GPT-2 style) whose
 * vocabulary is the first `size` tokens of OpenAI's r50k_base encoding (the
 * GPT-2 vocabulary, as shipped by the gpt-tokenizer package), plus an
 * `<|endoftext|>` special token with id `size`.
 *
 * r50k_base lists tokens by merge rank and no merges: ranks 0–255 are the
 * single bytes, and every later token is the merge of two earlier ones. The
 * merge that makes token r is found by running BPE on its bytes with only the
 * ranks below r — it stops at exactly two parts. Because the first `size`
 * ranks are closed under that rule, the cut vocabulary is a complete BPE
 * tokenizer: text made of its tokens encodes exactly as GPT-2 would encode it.
 */

/** GPT-2's reversible map from bytes to printable characters (bytes_to_unicode). */
export function byteToUnicode(): string[] {
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const table: string[] = new Array(256);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(direct.includes(b) ? b : 256 + next++);
  }
  return table;
}

export interface TokenizerBuild {
  json: string;
  eosTokenId: number;
  eosToken: string;
}

export const EOS_TOKEN = '<|endoftext|>';

export function buildBpeTokenizer(size: number): TokenizerBuild {
  const ranks = (require('gpt-tokenizer/cjs/bpeRanks/r50k_base') as { default: Array<string | number[]> }).default;
  if (size < 256 || size > ranks.length) throw new Error(`tokenizer size expects 256..${ranks.length}, but got ${size}`);
  const tokens = ranks.slice(0, size).map((entry) => (typeof entry === 'string' ? Buffer.from(entry, 'utf8') : Buffer.from(entry)));
  const rankOf = new Map(tokens.map((bytes, rank) => [bytes.toString('latin1'), rank]));
  const unicode = byteToUnicode();
  const show = (bytes: Buffer) => [...bytes].map((b) => unicode[b]).join('');

  const vocab: Record<string, number> = {};
  tokens.forEach((bytes, rank) => {
    vocab[show(bytes)] = rank;
  });
  const merges: Array<[string, string]> = [];
  for (let rank = 256; rank < size; rank++) {
    const [left, right] = mergeOf(tokens[rank], rank, rankOf);
    merges.push([show(left), show(right)]);
  }

  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: size, content: EOS_TOKEN, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  return { json: JSON.stringify(tokenizer), eosTokenId: size, eosToken: EOS_TOKEN };
}

/** The two tokens whose merge makes `token` (of rank `rank`), using only lower ranks. */
function mergeOf(token: Buffer, rank: number, rankOf: Map<string, number>): [Buffer, Buffer] {
  let parts = [...token].map((b) => Buffer.of(b));
  for (;;) {
    let best = -1;
    let bestRank = rank;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = rankOf.get(Buffer.concat([parts[i], parts[i + 1]]).toString('latin1'));
      if (r !== undefined && r < bestRank) {
        best = i;
        bestRank = r;
      }
    }
    if (best < 0) break;
    parts = [...parts.slice(0, best), Buffer.concat([parts[best], parts[best + 1]]), ...parts.slice(best + 2)];
  }
  if (parts.length !== 2) throw new Error(`r50k_base token ${rank} does not split into two lower-ranked tokens (got ${parts.length} parts)`);
  return [parts[0], parts[1]];
}
