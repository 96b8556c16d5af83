import type Redis from 'ioredis';
import type { DocumentStatus } from './document-store';

export interface IngestionState {
  status: DocumentStatus;
  embeddedChunks: number;
  totalChunks: number;
  reason: string | null;
}

export const isFinal = (state: IngestionState) => state.status !== 'INGESTING';

/**
 * Ingestion progress over Redis pub/sub, one channel per document, so a
 * subscriber on any knowledge replica hears the replica doing the work. The
 * document hash stays the source of truth: a subscriber reads it after
 * subscribing, and a message is only a hint that it moved on.
 */
export class IngestionFeed {
  private readonly listeners = new Map<string, Set<(state: IngestionState) => void>>();

  /** `subscriber` is a connection of its own: Redis gives a subscribed connection no other commands. */
  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
  ) {
    subscriber.on('message', (channel: string, message: string) => {
      const docId = channel.slice(CHANNEL.length);
      for (const listener of this.listeners.get(docId) ?? []) listener(JSON.parse(message) as IngestionState);
    });
  }

  async publish(docId: string, state: IngestionState): Promise<void> {
    await this.publisher.publish(CHANNEL + docId, JSON.stringify(state));
  }

  /**
   * Calls `listener` with every state published for the document until the
   * returned function is called. Resolves once Redis confirms the subscription,
   * so a state read afterwards cannot miss a later message.
   */
  async listen(docId: string, listener: (state: IngestionState) => void): Promise<() => Promise<void>> {
    let set = this.listeners.get(docId);
    if (!set) {
      set = new Set();
      this.listeners.set(docId, set);
    }
    set.add(listener);
    await this.subscriber.subscribe(CHANNEL + docId);
    return async () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(docId) === set) {
        this.listeners.delete(docId);
        await this.subscriber.unsubscribe(CHANNEL + docId);
      }
    };
  }

  close(): void {
    this.subscriber.disconnect();
  }
}

const CHANNEL = 'kb:ingestion:';
