import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { codedError, ErrorCode } from '../../lib/errors';
import { DateTimeScalar } from '../../lib/scalars';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { Document } from './document-store';
import type { Documents } from './documents';

export interface KnowledgeContext extends SubgraphContext {
  documents: Documents;
}

interface PageArgs {
  first: number;
  after?: string | null;
}

export const resolvers: GraphQLResolverMap<KnowledgeContext> = {
  DateTime: DateTimeScalar,
  Query: {
    documents: (_: unknown, { first, after }: PageArgs, { identity, documents }: KnowledgeContext) =>
      documents.list(identity, identity.sub ?? '', first, after),
  },
  Mutation: {
    addDocument: (_: unknown, args: { title: string; content: string }, { identity, documents }: KnowledgeContext) =>
      documents.add(identity, args.title, args.content),
  },
  User: {
    __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
    documents: ({ id }: { id: string }, { first, after }: PageArgs, { identity, documents }: KnowledgeContext) =>
      documents.list(identity, id, first, after),
  },
  Document: {
    __resolveReference: async (ref: { id: string }, { identity, documents }: KnowledgeContext) => {
      const doc = await documents.get(identity, ref.id);
      if (!doc) throw codedError(ErrorCode.NotFound, `no document with id ${JSON.stringify(ref.id)}`);
      return doc;
    },
    owner: (doc: Document) => ({ id: doc.ownerId }),
  },
};
