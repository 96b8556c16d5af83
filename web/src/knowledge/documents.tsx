import { useMutation, useQuery } from '@apollo/client/react';
import { useEffect, useId, useRef, useState, type DragEvent } from 'react';
import { graphql } from '../gql';
import { describeError } from '../graph/errors';
import { follow } from '../graph/live';
import { formatCount } from '../money';
import { Link } from '../router';
import { ErrorNotice, Loading } from '../ui/notices';

export const DOCUMENTS = graphql(`
  query Documents {
    documents(first: 50) {
      id
      title
      tags
      status
      failureReason
      sizeBytes
      chunkCount
      createdAt
    }
  }
`);

const ADD_DOCUMENT = graphql(`
  mutation AddDocument($title: String!, $content: String!, $tags: [String!]) {
    addDocument(title: $title, content: $content, tags: $tags) { id }
  }
`);

const DELETE_DOCUMENT = graphql(`
  mutation DeleteDocument($id: ID!) {
    deleteDocument(id: $id)
  }
`);

const INGESTION = graphql(`
  subscription Ingestion($documentId: ID!) {
    ingestion(documentId: $documentId) { status embeddedChunks totalChunks reason }
  }
`);

const ACCEPTED = '.md,.markdown,.txt,text/plain,text/markdown';

/** Tags as a person types them: "guides, setup" → ["guides", "setup"]. */
export function parseTags(text: string): string[] {
  return [
    ...new Set(
      text
        .split(',')
        .map((tag) => tag.trim())
        .filter(Boolean),
    ),
  ];
}

/** Upload (drop or pick files), the document list with each one's ingestion progress, tags and delete. */
export function Documents() {
  const documents = useQuery(DOCUMENTS);
  const [addDocument] = useMutation(ADD_DOCUMENT);
  const [deleteDocument] = useMutation(DELETE_DOCUMENT);
  const [tags, setTags] = useState('');
  const [uploading, setUploading] = useState<string[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const ids = useId();

  const upload = async (files: File[]) => {
    setError(null);
    const texts = files.filter((file) => /\.(md|markdown|txt)$/i.test(file.name) || file.type.startsWith('text/'));
    if (texts.length < files.length) setError(`Only text and Markdown files can be added; skipped ${files.length - texts.length} other ${files.length - texts.length === 1 ? 'file' : 'files'}.`);
    setUploading(texts.map((file) => file.name));
    try {
      for (const file of texts) {
        const content = await file.text();
        await addDocument({ variables: { title: file.name.replace(/\.(md|markdown|txt)$/i, ''), content, tags: parseTags(tags) } });
      }
    } catch (failure) {
      setError(describeError(failure));
    } finally {
      setUploading([]);
      await documents.refetch();
    }
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    void upload([...event.dataTransfer.files]);
  };

  const remove = async (id: string, title: string) => {
    if (!window.confirm(`Delete “${title}” and its chunks?`)) return;
    setError(null);
    try {
      await deleteDocument({ variables: { id } });
      await documents.refetch();
    } catch (failure) {
      setError(describeError(failure));
    }
  };

  return (
    <section aria-labelledby={`${ids}-title`}>
      <h2 id={`${ids}-title`}>Documents</h2>
      <fieldset
        className={`drop-zone${dragging ? ' dragging' : ''}`}
        onDragOver={(event) => {
          event.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <legend>Add documents</legend>
        <p>Drop text or Markdown files here, or choose them:</p>
        <div className="field">
          <label htmlFor={`${ids}-files`}>Files to add</label>
          <input id={`${ids}-files`} type="file" accept={ACCEPTED} multiple onChange={(e) => void upload([...(e.target.files ?? [])])} disabled={uploading.length > 0} />
        </div>
        <div className="field">
          <label htmlFor={`${ids}-tags`}>Tags for new documents</label>
          <input id={`${ids}-tags`} type="text" placeholder="guides, setup" value={tags} onChange={(e) => setTags(e.target.value)} aria-describedby={`${ids}-tags-hint`} />
          <p id={`${ids}-tags-hint`} className="hint">
            Separated by commas. Search and Ask can keep to documents with given tags.
          </p>
        </div>
        {uploading.length > 0 && <p role="status">Adding {uploading.join(', ')}…</p>}
      </fieldset>
      {error && (
        <p className="notice notice-error" role="alert">
          {error}
        </p>
      )}
      <ErrorNotice error={documents.error} />
      {documents.loading && !documents.data ? (
        <Loading what="documents" />
      ) : !documents.data?.documents?.length ? (
        <p className="hint">No documents yet.</p>
      ) : (
        <ul className="documents">
          {documents.data?.documents?.map((doc) => (
            <li key={doc.id}>
              <div className="document-head">
                <Link to={`/knowledge/documents/${doc.id}`}>{doc.title}</Link>
                <span className="hint">
                  {formatCount(doc.sizeBytes)} bytes{doc.chunkCount ? ` · ${doc.chunkCount} ${doc.chunkCount === 1 ? 'chunk' : 'chunks'}` : ''}
                </span>
                <button type="button" className="secondary small" onClick={() => void remove(doc.id, doc.title)}>
                  Delete<span className="visually-hidden"> {doc.title}</span>
                </button>
              </div>
              {doc.tags.length > 0 && (
                <ul className="tags" aria-label="Tags">
                  {doc.tags.map((tag) => (
                    <li key={tag}>{tag}</li>
                  ))}
                </ul>
              )}
              {doc.status === 'INGESTING' ? (
                <Ingestion documentId={doc.id} title={doc.title} onDone={() => void documents.refetch()} />
              ) : (
                <IngestionBar title={doc.title} status={doc.status} done={doc.chunkCount} total={doc.chunkCount} reason={doc.failureReason ?? null} />
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** Follows one document's ingestion until it is READY or FAILED. */
function Ingestion({ documentId, title, onDone }: { documentId: string; title: string; onDone: () => void }) {
  const [progress, setProgress] = useState({ status: 'INGESTING', done: 0, total: 0, reason: null as string | null });
  // The list passes a new onDone on every render; the subscription belongs to the document, not to the callback.
  const onDoneRef = useRef(onDone);
  onDoneRef.current = onDone;
  useEffect(
    () =>
      follow(
        INGESTION,
        { documentId },
        {
          next: ({ ingestion }) => {
            setProgress({ status: ingestion.status, done: ingestion.embeddedChunks, total: ingestion.totalChunks, reason: ingestion.reason ?? null });
            if (ingestion.status !== 'INGESTING') onDoneRef.current();
          },
          error: (error) => setProgress((p) => ({ ...p, status: 'FAILED', reason: describeError(error) })),
          complete: () => undefined,
        },
      ),
    [documentId],
  );
  return <IngestionBar title={title} {...progress} />;
}

function IngestionBar({ title, status, done, total, reason }: { title: string; status: string; done: number; total: number; reason: string | null }) {
  const percent = status === 'READY' ? 100 : total > 0 ? Math.floor((done / total) * 100) : 0;
  return (
    <div className="ingestion">
      <progress max={100} value={percent} aria-label={`Ingestion of ${title}`} aria-valuetext={`${percent} %`} />
      <span className={`status status-${status.toLowerCase()}`}>
        {status === 'READY' ? 'Ready' : status === 'FAILED' ? `Failed${reason ? `: ${reason}` : ''}` : `Embedding ${done} of ${total || '…'} chunks (${percent} %)`}
      </span>
    </div>
  );
}
