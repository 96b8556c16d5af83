import type { DocumentNode, GraphQLSchema } from 'graphql';
import { remember } from './bounded-map';

/**
 * Results worked out from a validated document, kept beside it. Apollo Server
 * hands every request with the same query text the same parsed DocumentNode
 * (its document cache, one per schema), so what depends only on the document,
 * the schema and a few small inputs (the operation name, the caller's scopes)
 * is computed once per distinct input rather than on every request. Entries
 * live as long as the document does, at most `perDocument` of them each.
 */
export class DocumentMemo<V> {
  private readonly byDocument = new WeakMap<DocumentNode, { schema: GraphQLSchema | undefined; entries: Map<string, V> }>();

  constructor(private readonly perDocument = 64) {}

  get(schema: GraphQLSchema | undefined, document: DocumentNode, key: string, compute: () => V): V {
    let memo = this.byDocument.get(document);
    if (!memo || memo.schema !== schema) {
      memo = { schema, entries: new Map() };
      this.byDocument.set(document, memo);
    }
    const known = memo.entries.get(key);
    if (known !== undefined) return known;
    const value = compute();
    remember(memo.entries, key, value, this.perDocument);
    return value;
  }
}
