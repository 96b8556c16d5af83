/**
 * An async generator whose return() takes effect at once. A generator's own
 * return() is queued behind a pending next(): a subscription waiting for its
 * next event would only end when that event came (a stalled GPU: never).
 * `interrupt` runs immediately on return() or throw() and must make the
 * pending next() settle (abort the source); `end` runs exactly once when the
 * iteration is over, however it ends — even on a return() before the first
 * next(), which would skip a generator's own `finally`. An iteration that is
 * over has nothing to interrupt: a return() after its end does not call
 * `interrupt` (a consumer closing a finished stream would abort its source
 * and unsubscribe upstream for nothing).
 */
/**
 * What `interrupt` aborts its source with: AbortController.abort() without a
 * reason builds a DOMException, stack and all, at every stream's end on a
 * busy server (1 % of the gateway's CPU under a burst of short streams); the
 * sources listen for the abort and never read its reason.
 */
export const RETURNED = new Error('the consumer ended the iteration');

export interface InterruptibleHooks {
  interrupt?: () => void;
  end?: () => void;
}

export function interruptible<T>(inner: AsyncGenerator<T>, hooks: InterruptibleHooks): AsyncGenerator<T> {
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    hooks.end?.();
  };
  const wrapper: AsyncGenerator<T> = {
    async next() {
      try {
        const step = await inner.next();
        if (step.done) end();
        return step;
      } catch (error) {
        end();
        throw error;
      }
    },
    async return(value) {
      if (!ended) hooks.interrupt?.();
      try {
        return await inner.return(value);
      } finally {
        end();
      }
    },
    async throw(error) {
      if (!ended) hooks.interrupt?.();
      try {
        return await inner.throw(error);
      } finally {
        end();
      }
    },
    [Symbol.asyncIterator]() {
      return wrapper;
    },
    async [Symbol.asyncDispose]() {
      await wrapper.return(undefined);
    },
  };
  return wrapper;
}
