import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/resolverMap';
import { codedError, ErrorCode } from '../../lib/errors';
import { DateTimeScalar } from '../../lib/scalars';
import type { SubgraphContext } from '../../lib/subgraph-service';
import type { AnswerOptions, Answers } from './answers';
import type { Document } from './document-store';
import { requireUser, type Documents } from './documents';
import type { Retrieval } from './retrieval';

export interface KnowledgeContext extends SubgraphContext {
  documents: Documents;
  retrieval: Retrieval;
  answers: Answers;
}

interface PageArgs {
  first: number;
  after?: string | null;
}

interface AskArgs {
  question: string;
  k: number;
  options?: AnswerOptions | null;
}

export const resolvers: GraphQLResolverMap<KnowledgeContext> = {
  DateTime: DateTimeScalar,
  Query: {
    documents: (_: unknown, { first, after }: PageArgs, { identity, documents }: KnowledgeContext) => documents.list(identity, identity.sub ?? '', first, after),
    document: (_: unknown, { id }: { id: string }, { identity, documents }: KnowledgeContext) => documents.get(identity, id),
    search: (_: unknown, args: { query: string; k: number; tags?: string[] | null }, { identity, identityHeader, retrieval }: KnowledgeContext) =>
      retrieval.search(requireUser(identity, 'search'), identityHeader, args.query, args.k, args.tags ?? []),
    ask: (_: unknown, { question, k, options }: AskArgs, { identity, identityHeader, answers }: KnowledgeContext) =>
      answers.ask(requireUser(identity, 'ask'), identityHeader, question, k, options ?? {}),
  },
  Mutation: {
    addDocument: (_: unknown, args: { title: string; content: string; tags?: string[] | null }, { identity, identityHeader, documents }: KnowledgeContext) =>
      documents.add(identity, identityHeader, args.title, args.content, args.tags ?? []),
    deleteDocument: (_: unknown, { id }: { id: string }, { identity, documents }: KnowledgeContext) => documents.delete(identity, id),
  },
  Subscription: {
    ingestion: {
      subscribe: (_: unknown, { documentId }: { documentId: string }, { identity, documents }: KnowledgeContext) => documents.ingestion(identity, documentId),
      resolve: (event: unknown) => event,
    },
    answerStream: {
      subscribe: (_: unknown, { question, k, options }: AskArgs, { identity, identityHeader, answers }: KnowledgeContext) =>
        answers.stream(requireUser(identity, 'answerStream'), identityHeader, question, k, options ?? {}),
      resolve: (event: unknown) => event,
    },
  },
  User: {
    __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
    documents: ({ id }: { id: string }, { first, after }: PageArgs, { identity, documents }: KnowledgeContext) => documents.list(identity, id, first, after),
  },
  Document: {
    __resolveReference: async (ref: { id: string }, { identity, documents }: KnowledgeContext) => {
      const doc = await documents.get(identity, ref.id);
      if (!doc) throw codedError(ErrorCode.NotFound, `no document with id ${JSON.stringify(ref.id)}`);
      return doc;
    },
    owner: (doc: Document) => ({ id: doc.ownerId }),
    chunks: (doc: Document, { first, after }: { first: number; after?: number | null }, { documents }: KnowledgeContext) => documents.chunks(doc, first, after),
  },
};
