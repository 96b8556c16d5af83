import type { ReactNode } from 'react';
import { describeError } from '../graph/errors';

/** An error as a sentence, announced to screen readers as it appears. */
export function ErrorNotice({ error, children }: { error: unknown; children?: ReactNode }) {
  if (!error) return null;
  return (
    <div className="notice notice-error" role="alert">
      {describeError(error)}
      {children}
    </div>
  );
}

/** A loading state that says what is loading (and is announced politely). */
export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}
