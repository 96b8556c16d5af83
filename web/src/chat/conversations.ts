import { useCallback, useEffect, useRef, useState } from 'react';
import type { FinishReason, StreamUsage } from './stream';

/**
 * Conversations live in this browser only (localStorage, one list per user),
 * as a chat site keeps a visitor's history: nothing about them is stored by
 * Sluice beyond the usage it bills.
 */
export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  content: string;
  /** The model that wrote an answer. */
  model?: string;
  usage?: StreamUsage;
  /** What the answer cost, in micros (usage at the model's prices). */
  costMicros?: number;
  currency?: string;
  finishReason?: FinishReason;
  /** Why the answer failed, as a sentence. */
  error?: string;
}

export interface Conversation {
  id: string;
  title: string;
  updatedAt: number;
  messages: ChatMessage[];
}

const keyFor = (userId: string) => `sluice.conversations.${userId}`;

function load(userId: string): Conversation[] {
  try {
    const stored = JSON.parse(localStorage.getItem(keyFor(userId)) ?? '[]') as unknown;
    return Array.isArray(stored) ? (stored as Conversation[]) : [];
  } catch {
    return [];
  }
}

export function newConversation(): Conversation {
  return { id: crypto.randomUUID(), title: 'New conversation', updatedAt: Date.now(), messages: [] };
}

/**
 * The user's conversations, newest first, with `save` (insert or replace one)
 * and `remove`. Each change is written to storage at once, not in a state
 * updater: an answer stopped because its page closed is still kept.
 */
export function useConversations(userId: string) {
  const [conversations, setConversations] = useState(() => load(userId));
  const current = useRef(conversations);
  useEffect(() => {
    current.current = load(userId);
    setConversations(current.current);
  }, [userId]);

  const write = useCallback(
    (change: (list: Conversation[]) => Conversation[]) => {
      const next = change(current.current).sort((a, b) => b.updatedAt - a.updatedAt);
      current.current = next;
      try {
        localStorage.setItem(keyFor(userId), JSON.stringify(next));
      } catch {
        // Storage full or disabled: the conversation still lives in this tab.
      }
      setConversations(next);
    },
    [userId],
  );
  const save = useCallback((conversation: Conversation) => write((list) => [conversation, ...list.filter((c) => c.id !== conversation.id)]), [write]);
  const remove = useCallback((id: string) => write((list) => list.filter((c) => c.id !== id)), [write]);
  return { conversations, save, remove };
}

/** A conversation's title: the start of its first question. */
export function titleFrom(text: string): string {
  const line = text.trim().split('\n')[0];
  return line.length > 48 ? `${line.slice(0, 47)}…` : line || 'New conversation';
}
