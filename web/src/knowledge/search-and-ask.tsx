import { useLazyQuery } from '@apollo/client/react';
import { useEffect, useId, useRef, useState, type FormEvent } from 'react';
import { addChunk, emptyStream, type AssembledStream } from '../chat/stream';
import { graphql } from '../gql';
import { describeError, describeGraphError } from '../graph/errors';
import { follow } from '../graph/live';
import { formatCount } from '../money';
import { Link } from '../router';
import { Markdown } from '../ui/markdown';
import { ErrorNotice } from '../ui/notices';
import { parseTags } from './documents';
import { highlight } from './highlight';

const SEARCH = graphql(`
  query Search($query: String!, $k: Int, $tags: [String!]) {
    search(query: $query, k: $k, tags: $tags) {
      score
      chunk { index heading text }
      document { id title }
    }
  }
`);

const ANSWER_STREAM = graphql(`
  subscription AnswerStream($question: String!, $k: Int, $options: AnswerOptions) {
    answerStream(question: $question, k: $k, options: $options) {
      index
      delta
      grounded
      finishReason
      citations { number score chunk { index heading } document { id title } }
      usage { promptTokens completionTokens totalTokens promptCacheHitTokens promptCacheMissTokens }
      error { code message }
    }
  }
`);

const chunkPath = (documentId: string, index: number) => `/knowledge/documents/${documentId}#chunk-${index}`;

/** The answer's "[2]" citations as links to the matching source below it (Markdown links to in-page anchors). */
export function linkCitations(text: string, numbers: ReadonlySet<number>): string {
  return text.replace(/\[(\d+)\](?!\()/g, (whole, n: string) => (numbers.has(Number(n)) ? `[\\[${n}\\]](#source-${n})` : whole));
}

function TagFilter({ value, onChange }: { value: string; onChange: (value: string) => void }) {
  const id = useId();
  return (
    <div className="field inline">
      <label htmlFor={id}>Only tags</label>
      <input id={id} type="text" placeholder="any" value={value} onChange={(e) => onChange(e.target.value)} />
    </div>
  );
}

export function Search() {
  const [run, { data, loading, error, called }] = useLazyQuery(SEARCH, { fetchPolicy: 'network-only' });
  const [query, setQuery] = useState('');
  const [tags, setTags] = useState('');
  const [searched, setSearched] = useState('');
  const ids = useId();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!query.trim()) return;
    setSearched(query);
    const only = parseTags(tags);
    void run({ variables: { query, k: 5, tags: only.length ? only : null } }).catch(() => undefined);
  };
  return (
    <section aria-labelledby={`${ids}-title`}>
      <h2 id={`${ids}-title`}>Search</h2>
      <search>
        <form className="row" onSubmit={submit}>
          <div className="field inline grow">
            <label htmlFor={`${ids}-q`}>Search your documents</label>
            <input id={`${ids}-q`} type="search" value={query} onChange={(e) => setQuery(e.target.value)} />
          </div>
          <TagFilter value={tags} onChange={setTags} />
          <button type="submit" disabled={loading}>
            {loading ? 'Searching…' : 'Search'}
          </button>
        </form>
      </search>
      <ErrorNotice error={error} />
      {called && !loading && !error && data?.search?.length === 0 && <p className="hint">Nothing in your ready documents matches.</p>}
      <ol className="hits">
        {data?.search?.map((hit) => (
          <li key={`${hit.document.id}-${hit.chunk.index}`}>
            <Link to={chunkPath(hit.document.id, hit.chunk.index)}>
              {hit.document.title}
              {hit.chunk.heading ? ` › ${hit.chunk.heading}` : ''}
            </Link>
            <span className="hint"> similarity {hit.score.toFixed(2)}</span>
            <p className="chunk">
              {highlight(hit.chunk.text, searched).map((segment) => (segment.match ? <mark key={segment.start}>{segment.text}</mark> : <span key={segment.start}>{segment.text}</span>))}
            </p>
          </li>
        ))}
      </ol>
    </section>
  );
}

type Citation = { number: number; score: number; chunk: { index: number; heading?: string | null }; document: { id: string; title: string } };

interface AskState {
  stream: AssembledStream;
  citations: Citation[];
  grounded: boolean;
  error: string | null;
  running: boolean;
}

export function Ask() {
  const [question, setQuestion] = useState('');
  const [tags, setTags] = useState('');
  const [state, setState] = useState<AskState | null>(null);
  const stopRef = useRef<(() => void) | null>(null);
  const ids = useId();
  useEffect(() => () => stopRef.current?.(), []);

  const stop = () => {
    stopRef.current?.();
    stopRef.current = null;
    setState((s) => s && { ...s, running: false });
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!question.trim() || stopRef.current) return;
    setState({ stream: emptyStream, citations: [], grounded: true, error: null, running: true });
    const only = parseTags(tags);
    stopRef.current = follow(
      ANSWER_STREAM,
      { question, k: 5, options: only.length ? { tags: only } : null },
      {
        next: ({ answerStream: chunk }) =>
          setState((s) => {
            if (!s) return s;
            const stream = addChunk(s.stream, chunk);
            const finished = stream.finishReason !== null;
            if (finished) stopRef.current = null;
            return {
              stream,
              citations: chunk.citations.length ? chunk.citations : s.citations,
              grounded: chunk.grounded,
              error: stream.error ? describeGraphError(stream.error) : null,
              running: !finished,
            };
          }),
        error: (error) => {
          stopRef.current = null;
          setState((s) => s && { ...s, error: describeError(error), running: false });
        },
        complete: () => {
          stopRef.current = null;
          setState((s) => s && { ...s, running: false });
        },
      },
    );
  };

  const numbers = new Set(state?.citations.map((c) => c.number));
  return (
    <section aria-labelledby={`${ids}-title`}>
      <h2 id={`${ids}-title`}>Ask</h2>
      <form className="row" onSubmit={submit}>
        <div className="field inline grow">
          <label htmlFor={`${ids}-q`}>Question about your documents</label>
          <input id={`${ids}-q`} type="text" value={question} onChange={(e) => setQuestion(e.target.value)} />
        </div>
        <TagFilter value={tags} onChange={setTags} />
        {state?.running ? (
          <button type="button" className="danger" onClick={stop}>
            Stop
          </button>
        ) : (
          <button type="submit">Ask</button>
        )}
      </form>
      {state && (
        <div className="answer" aria-busy={state.running}>
          {state.stream.text ? <Markdown text={linkCitations(state.stream.text, numbers)} /> : state.running && <p className="loading">Reading your documents…</p>}
          {state.error && (
            <p className="notice notice-error" role="alert">
              {state.error}
            </p>
          )}
          {!state.running && state.stream.usage && (
            <p className="usage">
              {formatCount(state.stream.usage.promptTokens)} prompt tokens · {formatCount(state.stream.usage.completionTokens)} completion tokens
            </p>
          )}
          {state.citations.length > 0 && (
            <>
              <h3>Sources</h3>
              <ol className="citations">
                {state.citations.map((c) => (
                  <li key={c.number} id={`source-${c.number}`}>
                    <Link to={chunkPath(c.document.id, c.chunk.index)}>
                      [{c.number}] {c.document.title}
                      {c.chunk.heading ? ` › ${c.chunk.heading}` : ''} (chunk {c.chunk.index + 1})
                    </Link>
                  </li>
                ))}
              </ol>
            </>
          )}
        </div>
      )}
    </section>
  );
}
