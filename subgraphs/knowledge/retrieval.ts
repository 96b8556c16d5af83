import { codedError, ErrorCode } from '../../lib/errors';
import type { Chunk } from './chunker';
import type { Document, DocumentStore } from './document-store';
import type { ModelChoice } from './model-choice';
import type { VectorIndex } from './vector-index';

export interface Hit {
  score: number;
  chunk: Chunk & { document: Document };
  document: Document;
}

export interface RetrievalLimits {
  maxK: number;
  maxQueryChars: number;
  maxTags: number;
}

/** `search`: embeds the query through inference and looks it up in the caller's own index. */
export class Retrieval {
  constructor(
    private readonly store: DocumentStore,
    private readonly index: VectorIndex,
    private readonly models: ModelChoice,
    private readonly limits: RetrievalLimits,
  ) {}

  async search(owner: string, identityHeader: string, query: string, k: number, tags: readonly string[] = [], label = 'search'): Promise<Hit[]> {
    this.check(label, query, k, tags);
    const model = await this.models.current(identityHeader);
    const [vector] = await this.models.embed(identityHeader, model, [query]);
    const found = this.index.search(owner, vector, k, tags.length > 0 ? [...tags] : undefined);
    const [docs, chunks] = await Promise.all([this.store.getMany(found.map((hit) => hit.docId)), this.store.chunksAt(found.map((hit) => [hit.docId, hit.chunk] as const))]);
    // A hit whose document was deleted (or not yet indexed as READY on this replica) is dropped, never shown half.
    return found.flatMap((hit, i) => {
      const document = docs[i];
      const chunk = chunks[i];
      if (!document || !chunk || document.ownerId !== owner || document.status !== 'READY') return [];
      return [{ score: hit.score, chunk: { ...chunk, document }, document }];
    });
  }

  private check(label: string, query: string, k: number, tags: readonly string[]): void {
    const { maxK, maxQueryChars, maxTags } = this.limits;
    const what = label === 'search' ? 'query' : 'question';
    if (query.trim().length === 0 || query.length > maxQueryChars) {
      throw codedError(ErrorCode.BadUserInput, `${label} expects "${what}" to be 1 to ${maxQueryChars} characters of text, but got ${query.trim().length === 0 ? 'an empty one' : query.length}`, {
        field: what,
      });
    }
    if (!Number.isInteger(k) || k < 1 || k > maxK) throw codedError(ErrorCode.BadUserInput, `${label} expects "k" between 1 and ${maxK}, but got ${k}`, { field: 'k' });
    if (tags.length > maxTags) throw codedError(ErrorCode.BadUserInput, `${label} expects at most ${maxTags} tags, but got ${tags.length}`, { field: 'tags' });
  }
}
