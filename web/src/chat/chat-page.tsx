import { useQuery } from '@apollo/client/react';
import { useEffect, useId, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { Session } from '../auth/session';
import { graphql } from '../gql';
import { describeError, describeGraphError, isCutCode, isStreamCut } from '../graph/errors';
import { follow } from '../graph/live';
import { costMicros, formatCount, formatMicros, formatPricePerMillion, type Pricing } from '../money';
import { Markdown } from '../ui/markdown';
import { ErrorNotice, Loading } from '../ui/notices';
import { newConversation, titleFrom, useConversations, type ChatMessage, type Conversation } from './conversations';
import { addChunk, emptyStream, isFinished, resumable, type AssembledStream } from './stream';

const CHAT_MODELS = graphql(`
  query ChatModels {
    models {
      id
      kind
      ready
      state
      contextLength
      pricing { currency inputCacheHit inputCacheMiss output }
    }
  }
`);

const COMPLETION_STREAM = graphql(`
  subscription CompletionStream($input: CompletionInput!, $streamKey: String, $resumeAt: Int) {
    completionStream(input: $input, streamKey: $streamKey, resumeAt: $resumeAt) {
      index
      offset
      delta
      finishReason
      usage { promptTokens completionTokens totalTokens promptCacheHitTokens promptCacheMissTokens }
      error { code message }
    }
  }
`);

interface ChatModel {
  id: string;
  ready: boolean;
  pricing: Pricing;
  /** Longest prompt plus answer, when the model declares it: the most the answer can be. */
  contextLength: number | null;
}

/** The answer being written: its conversation (ending with the question), the text so far, and how to stop it. */
interface LiveAnswer {
  conversation: Conversation;
  model: ChatModel;
  stream: AssembledStream;
  /** The stream was cut (a server under it was lost) and is being resumed. */
  resuming?: boolean;
  stop: () => void;
}

const DEFAULT_MAX_TOKENS = 512;
/** Times an answer cut by a lost server is resumed before the page gives up, and the pause before the n-th (n times this). */
const MAX_RESUMES = 6;
const RESUME_PAUSE_MS = 1_000;

export function ChatPage({ session }: { session: Session }) {
  const { conversations, save, remove } = useConversations(session.user.id);
  const [currentId, setCurrentId] = useState<string | null>(() => conversations[0]?.id ?? null);
  const models = useQuery(CHAT_MODELS);
  const chatModels: ChatModel[] = (models.data?.models ?? []).flatMap((m) =>
    m.kind === 'TEXT_GENERATION' && m.pricing ? [{ id: m.id, ready: m.ready, pricing: m.pricing, contextLength: m.contextLength ?? null }] : [],
  );
  const [modelId, setModelId] = useState('');
  const model = chatModels.find((m) => m.id === modelId) ?? chatModels.find((m) => m.ready) ?? chatModels[0];
  const [maxTokens, setMaxTokens] = useState(DEFAULT_MAX_TOKENS);
  const [live, setLive] = useState<LiveAnswer | null>(null);
  const liveRef = useRef<LiveAnswer | null>(null);
  liveRef.current = live;
  const ids = useId();

  // Leaving the page ends the stream (and its billing) rather than leaving it running unseen.
  useEffect(() => () => liveRef.current?.stop(), []);

  const current = conversations.find((c) => c.id === currentId) ?? null;

  /**
   * Streams the answer to `conversation`, whose last message is the question.
   * The stream has a key, so an answer cut by a server lost under it (the
   * gateway, the inference service, the GPU) is resumed where it was: the
   * page subscribes again with the text it has, and the graph sends the rest
   * of the same answer, billed once.
   */
  const answer = (conversation: Conversation) => {
    if (!model || liveRef.current) return;
    save(conversation);
    setCurrentId(conversation.id);
    const streamKey = crypto.randomUUID();
    const input = { model: model.id, messages: conversation.messages.map(({ role, content }) => ({ role, content })), maxTokens };
    let stream = emptyStream;
    let done = false;
    let resumes = 0;
    let unsubscribe = () => {};
    const finish = (extra: Partial<ChatMessage>) => {
      if (done) return;
      done = true;
      unsubscribe();
      const usage = stream.usage ?? undefined;
      const message: ChatMessage = {
        id: crypto.randomUUID(),
        role: 'assistant',
        content: stream.text,
        model: model.id,
        finishReason: stream.finishReason ?? undefined,
        ...(usage ? { usage, costMicros: costMicros(usage, model.pricing), currency: model.pricing.currency } : {}),
        ...(stream.error ? { error: describeGraphError(stream.error) } : {}),
        ...extra,
      };
      save({ ...conversation, messages: [...conversation.messages, message], updatedAt: Date.now() });
      setLive(null);
    };
    /** Goes on after a cut, or ends the answer with `why` once the resumes are used up. */
    const resume = (why: string) => {
      if (done) return;
      unsubscribe();
      if (resumes >= MAX_RESUMES) return finish({ error: why });
      resumes += 1;
      stream = resumable(stream);
      setLive((now) => (now ? { ...now, stream, resuming: true } : now));
      setTimeout(() => done || subscribe(), RESUME_PAUSE_MS * resumes);
    };
    const subscribe = () => {
      unsubscribe = follow(
        COMPLETION_STREAM,
        { input, streamKey, resumeAt: stream.text.length },
        {
          next: (data) => {
            stream = addChunk(stream, data.completionStream);
            setLive((now) => (now ? { ...now, stream, resuming: false } : now));
            if (!isFinished(stream)) return;
            if (isCutCode(stream.error?.code)) resume(describeGraphError(stream.error!));
            else finish({});
          },
          error: (error) => (isStreamCut(error) ? resume(describeError(error)) : finish({ error: describeError(error) })),
          complete: () => (isFinished(stream) ? finish({}) : resume('The answer ended before its last part arrived: retry.')),
        },
      );
    };
    subscribe();
    setLive({ conversation, model, stream, stop: () => finish({ finishReason: 'CANCELLED' }) });
  };

  const ask = (text: string) => {
    const base = current ?? newConversation();
    const question: ChatMessage = { id: crypto.randomUUID(), role: 'user', content: text };
    answer({ ...base, title: base.messages.length === 0 ? titleFrom(text) : base.title, messages: [...base.messages, question], updatedAt: Date.now() });
  };

  /** Asks the last question again, without the answer it got (if any). */
  const retry = (conversation: Conversation) => {
    const lastQuestion = conversation.messages.map((m) => m.role).lastIndexOf('user');
    if (lastQuestion >= 0) answer({ ...conversation, messages: conversation.messages.slice(0, lastQuestion + 1), updatedAt: Date.now() });
  };

  const shown = live && live.conversation.id === currentId ? live.conversation : current;
  const busy = live !== null;

  return (
    <div className="chat">
      <aside className="conversations" aria-label="Conversations">
        <button type="button" onClick={() => setCurrentId(null)} disabled={busy}>
          New conversation
        </button>
        {conversations.length === 0 ? (
          <p className="hint">Your conversations are kept in this browser.</p>
        ) : (
          <ul className="conversation-list">
            {conversations.map((c) => (
              <li key={c.id} className={c.id === currentId ? 'current' : undefined}>
                <button type="button" className="link" aria-current={c.id === currentId ? 'true' : undefined} onClick={() => setCurrentId(c.id)} disabled={busy}>
                  {c.title}
                </button>
                <button type="button" className="icon" aria-label={`Delete “${c.title}”`} onClick={() => remove(c.id)} disabled={busy && live?.conversation.id === c.id}>
                  ×
                </button>
              </li>
            ))}
          </ul>
        )}
      </aside>

      <section className="thread" aria-labelledby={`${ids}-title`}>
        <h1 id={`${ids}-title`}>{shown?.title ?? 'Chat'}</h1>
        <div className="settings">
          <div className="field inline">
            <label htmlFor={`${ids}-model`}>Model</label>
            {models.loading && !models.data ? (
              <Loading what="models" />
            ) : (
              <select id={`${ids}-model`} value={model?.id ?? ''} onChange={(e) => setModelId(e.target.value)} disabled={busy}>
                {chatModels.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.id}
                    {m.ready ? '' : ' (not ready)'}
                  </option>
                ))}
              </select>
            )}
          </div>
          <div className="field inline">
            <label htmlFor={`${ids}-max`}>Longest answer (tokens)</label>
            <input
              id={`${ids}-max`}
              type="number"
              min={1}
              max={model?.contextLength ?? undefined}
              value={maxTokens}
              onChange={(e) => setMaxTokens(Math.max(1, Number(e.target.value) || DEFAULT_MAX_TOKENS))}
              disabled={busy}
            />
          </div>
          {model && (
            <p className="prices">
              Input {formatPricePerMillion(model.pricing.inputCacheMiss, model.pricing.currency)} ({formatPricePerMillion(model.pricing.inputCacheHit, model.pricing.currency)} when cached) · Output{' '}
              {formatPricePerMillion(model.pricing.output, model.pricing.currency)}
            </p>
          )}
        </div>
        <ErrorNotice error={models.error} />
        {!models.loading && chatModels.length === 0 && !models.error && <p className="notice">No text-generation model with a price is available right now.</p>}

        <ol className="messages" aria-label="Messages">
          {shown?.messages.map((message, i) => (
            <MessageView key={message.id} message={message} onRetry={!busy && i === shown.messages.length - 1 && message.role === 'assistant' ? () => retry(shown) : undefined} />
          ))}
          {live && live.conversation.id === shown?.id && (
            <li className="message assistant" aria-busy="true">
              <span className="role">{live.model.id}</span>
              {live.stream.text ? <Markdown text={live.stream.text} /> : <p className="loading">Thinking…</p>}
              {live.resuming && (
                <p className="notice" role="status">
                  The connection to Sluice was lost mid-answer: reconnecting, the answer goes on where it stopped.
                </p>
              )}
            </li>
          )}
        </ol>
        {!busy && shown && shown.messages.at(-1)?.role === 'user' && (
          <p className="notice">
            This question has no answer yet.{' '}
            <button type="button" className="secondary" onClick={() => retry(shown)}>
              Retry
            </button>
          </p>
        )}
        <Composer onSend={ask} onStop={live?.stop} busy={busy} disabled={!model} />
      </section>
    </div>
  );
}

function MessageView({ message, onRetry }: { message: ChatMessage; onRetry?: () => void }) {
  return (
    <li className={`message ${message.role}`}>
      <span className="role">{message.role === 'user' ? 'You' : message.model}</span>
      {message.role === 'user' ? <p className="question">{message.content}</p> : <Markdown text={message.content} />}
      {message.error && (
        <p className="notice notice-error" role="alert">
          {message.error}
        </p>
      )}
      {message.role === 'assistant' && (
        <p className="usage">
          {message.finishReason === 'CANCELLED' && <span>Stopped: billed for the text received only. </span>}
          {message.finishReason === 'LENGTH' && <span>Cut at the longest answer allowed. </span>}
          {message.usage && (
            <span className="cost">
              {formatCount(message.usage.promptTokens)} prompt tokens ({formatCount(message.usage.promptCacheHitTokens)} cached) · {formatCount(message.usage.completionTokens)} completion tokens ·{' '}
              <strong data-micros={message.costMicros}>{formatMicros(message.costMicros ?? 0, message.currency)}</strong>
            </span>
          )}
          {onRetry && (
            <button type="button" className="secondary small" onClick={onRetry}>
              Retry
            </button>
          )}
        </p>
      )}
    </li>
  );
}

/** The message box: Enter sends, Shift+Enter starts a new line; Stop ends the answer being written. */
function Composer({ onSend, onStop, busy, disabled }: { onSend: (text: string) => void; onStop?: () => void; busy: boolean; disabled: boolean }) {
  const [text, setText] = useState('');
  const id = useId();
  const send = (event?: FormEvent) => {
    event?.preventDefault();
    if (busy || disabled || !text.trim()) return;
    onSend(text.trim());
    setText('');
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) send(event);
  };
  return (
    <form className="composer" onSubmit={send} aria-label="Send a message">
      <label htmlFor={id} className="visually-hidden">
        Message
      </label>
      <textarea id={id} rows={3} value={text} onChange={(e) => setText(e.target.value)} onKeyDown={onKeyDown} placeholder="Message (Enter sends, Shift+Enter adds a line)" />
      {busy ? (
        <button type="button" className="danger" onClick={onStop}>
          Stop
        </button>
      ) : (
        <button type="submit" disabled={disabled || !text.trim()}>
          Send
        </button>
      )}
    </form>
  );
}
