/**
 * `embed(tokens:)`: token ids are read in the embedding model's own
 * tokenizer (its config's `tokenizer` parameter, the encoding the
 * gpu-server's text-embedding backend and Triton's model.py tokenize with)
 * and decoded back into the text they encode, which is then embedded as any
 * text. So the GPU tier keeps one input (text), billing counts what it counts
 * for text, and ids give the vector of the text they encode.
 */
import { codedError, ErrorCode } from '../../../lib/errors';

interface Encoding {
  decode(ids: Iterable<number>): string;
  vocabularySize: number;
}

/** The gpt-tokenizer encodings whose ids can be decoded, loaded on first use (each is megabytes of ranks). */
const ENCODINGS: Record<string, () => Encoding> = {
  r50k_base: () => require('gpt-tokenizer/cjs/encoding/r50k_base') as Encoding,
  p50k_base: () => require('gpt-tokenizer/cjs/encoding/p50k_base') as Encoding,
  cl100k_base: () => require('gpt-tokenizer/cjs/encoding/cl100k_base') as Encoding,
  o200k_base: () => require('gpt-tokenizer/cjs/encoding/o200k_base') as Encoding,
};

export const DECODABLE_TOKENIZERS = Object.keys(ENCODINGS);

/** Where the ids are, for messages and `extensions.field`. */
const ARGUMENT = 'tokens';

/**
 * Decodes each row of ids into its text. A tokenizer Sluice cannot decode
 * (or none declared) → BAD_USER_INPUT saying the model does not take token
 * ids; an id that is not a token of the encoding → BAD_USER_INPUT naming
 * its index (`tokens[i][j]`).
 */
export function decodeTokenRows(modelId: string, tokenizer: string | null, rows: readonly (readonly number[])[]): string[] {
  const load = tokenizer === null ? undefined : ENCODINGS[tokenizer];
  if (!load) {
    const declared = tokenizer === null ? 'its config names no tokenizer' : `its tokenizer is ${JSON.stringify(tokenizer)}`;
    throw codedError(
      ErrorCode.BadUserInput,
      `model ${JSON.stringify(modelId)} does not take token ids: ${declared}, and embed decodes ids of ${DECODABLE_TOKENIZERS.join(', ')} only; send texts instead`,
      { field: ARGUMENT },
    );
  }
  const encoding = load();
  return rows.map((ids, i) => {
    try {
      return encoding.decode(ids);
    } catch (error) {
      // gpt-tokenizer throws on the first id it has no bytes for (past the vocabulary, or a gap in it): find which one.
      const j = ids.findIndex((id) => !isToken(encoding, id));
      if (j < 0) throw error;
      throw codedError(
        ErrorCode.BadUserInput,
        `embed expects token ids of ${tokenizer} (the tokenizer of ${JSON.stringify(modelId)}: ids from 0 to ${encoding.vocabularySize - 1}), but ${ARGUMENT}[${i}][${j}] is ${ids[j]}, which is not one of its tokens`,
        { field: `${ARGUMENT}[${i}][${j}]` },
      );
    }
  });
}

function isToken(encoding: Encoding, id: number): boolean {
  try {
    encoding.decode([id]);
    return true;
  } catch {
    return false;
  }
}
