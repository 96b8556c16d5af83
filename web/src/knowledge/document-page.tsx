import { useQuery } from '@apollo/client/react';
import { useEffect } from 'react';
import { graphql } from '../gql';
import { Link } from '../router';
import { ErrorNotice, Loading } from '../ui/notices';

const DOCUMENT = graphql(`
  query DocumentChunks($id: ID!, $after: Int) {
    document(id: $id) {
      id
      title
      tags
      status
      chunkCount
      chunks(first: 100, after: $after) { index heading text tokenCount }
    }
  }
`);

/** The graph hands out at most 100 chunks at a time. */
const PAGE = 100;

/** The first chunk to show: the document's start, or a few chunks before the linked one when it lies beyond the first page. */
function firstShown(hash: string): number {
  const linked = Number(/^#chunk-(\d+)$/.exec(hash)?.[1] ?? 0);
  return linked < PAGE ? 0 : linked - 10;
}

/** One document, chunk by chunk; a citation or search hit links to #chunk-N, which is scrolled to and marked. */
export function DocumentPage({ id }: { id: string }) {
  const start = firstShown(location.hash);
  const { data, loading, error } = useQuery(DOCUMENT, { variables: { id, after: start > 0 ? start - 1 : null } });
  const doc = data?.document;

  useEffect(() => {
    if (!doc || !location.hash) return;
    const target = document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (!target) return;
    target.scrollIntoView({ block: 'start' });
    target.focus({ preventScroll: true });
  }, [doc]);

  return (
    <div className="document-page">
      <p>
        <Link to="/knowledge">← Knowledge</Link>
      </p>
      <ErrorNotice error={error} />
      {loading && !data ? (
        <Loading what="the document" />
      ) : !doc ? (
        !error && <p className="notice">This document does not exist, or it is not yours.</p>
      ) : (
        <>
          <h1>{doc.title}</h1>
          {doc.tags.length > 0 && <p className="hint">Tags: {doc.tags.join(', ')}</p>}
          {doc.chunks.length === 0 && <p className="hint">{doc.status === 'INGESTING' ? 'Still being split into chunks.' : 'No chunks.'}</p>}
          {doc.chunks.length > 0 && doc.chunks.length < doc.chunkCount && (
            <p className="hint">
              Chunks {start + 1} to {start + doc.chunks.length} of {doc.chunkCount}.
            </p>
          )}
          <ol className="chunks">
            {doc.chunks.map((chunk) => (
              <li key={chunk.index} id={`chunk-${chunk.index}`} tabIndex={-1} className="chunk" aria-label={`Chunk ${chunk.index + 1}`}>
                <p className="hint">
                  Chunk {chunk.index + 1}
                  {chunk.heading ? ` · ${chunk.heading}` : ''} · {chunk.tokenCount} tokens
                </p>
                <p className="chunk-text">{chunk.text}</p>
              </li>
            ))}
          </ol>
        </>
      )}
    </div>
  );
}
