import { codedError, ErrorCode } from '../../lib/errors';
import type { Identity } from '../../lib/identity';
import type { Document, DocumentStore } from './document-store';

export interface DocumentLimits {
  maxTitleChars: number;
  maxContentBytes: number;
  maxPage: number;
}

/** The knowledge base's rules (who may do what, what is valid) over the document store. */
export class Documents {
  constructor(
    private readonly store: DocumentStore,
    private readonly limits: DocumentLimits,
  ) {}

  async add(identity: Identity, title: string, content: string): Promise<Document> {
    const owner = requireUser(identity, 'addDocument');
    const cleanTitle = title.trim();
    if (cleanTitle.length === 0 || cleanTitle.length > this.limits.maxTitleChars) {
      throw codedError(ErrorCode.BadUserInput, `addDocument expects "title" to be 1 to ${this.limits.maxTitleChars} characters, but got ${cleanTitle.length}`, { field: 'title' });
    }
    const size = Buffer.byteLength(content);
    if (content.trim().length === 0 || size > this.limits.maxContentBytes) {
      throw codedError(
        ErrorCode.BadUserInput,
        `addDocument expects "content" to be non-empty and at most ${this.limits.maxContentBytes} bytes, but got ${size} bytes`,
        { field: 'content', limit: this.limits.maxContentBytes, got: size },
      );
    }
    return this.store.add(owner, cleanTitle, content);
  }

  list(identity: Identity, ownerId: string, first: number, after?: string | null): Promise<Document[]> {
    const caller = requireUser(identity, 'documents');
    if (caller !== ownerId) throw codedError(ErrorCode.NotFound, `no documents for user ${JSON.stringify(ownerId)}`);
    if (!Number.isInteger(first) || first < 1 || first > this.limits.maxPage) {
      throw codedError(ErrorCode.BadUserInput, `documents expects "first" between 1 and ${this.limits.maxPage}, but got ${first}`, { field: 'first' });
    }
    return this.store.list(caller, first, after ?? undefined);
  }

  get(identity: Identity, id: string): Promise<Document | null> {
    return identity.sub ? this.store.get(identity.sub, id) : Promise.resolve(null);
  }
}

function requireUser(identity: Identity, field: string): string {
  if (!identity.sub) throw codedError(ErrorCode.Unauthenticated, `${field} requires a signed-in user: send "Authorization: Bearer <token>"`);
  return identity.sub;
}
