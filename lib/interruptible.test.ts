import { interruptible } from './interruptible';

/** A source that waits for an event that only `interrupt` (or a push) delivers, like an idle subscription. */
function idleSource() {
  let wake: (() => void) | undefined;
  let finallyRan = false;
  async function* source() {
    try {
      await new Promise<void>((resolve) => (wake = resolve));
      yield 'never reached after an interrupt';
    } finally {
      finallyRan = true;
    }
  }
  return { gen: source(), wake: () => wake?.(), finallyRan: () => finallyRan };
}

describe('interruptible', () => {
  it('ends at once on return() while next() waits, through interrupt, and runs end once', async () => {
    const { gen, wake, finallyRan } = idleSource();
    let ended = 0;
    let interrupted = false;
    const it = interruptible(gen, {
      interrupt: () => {
        interrupted = true;
        wake();
      },
      end: () => ended++,
    });
    const pending = it.next();
    await new Promise((resolve) => setImmediate(resolve));
    await it.return(undefined);
    expect(interrupted).toBe(true);
    expect(finallyRan()).toBe(true);
    expect(ended).toBe(1);
    await pending;
    expect(ended).toBe(1);
  });

  it('runs end on a return() before the first next(), which skips a generator’s own finally', async () => {
    const { gen } = idleSource();
    let ended = 0;
    await interruptible(gen, { end: () => ended++ }).return(undefined);
    expect(ended).toBe(1);
  });

  it('runs end once when the source finishes or fails', async () => {
    let ended = 0;
    const done = interruptible(
      (async function* () {
        yield 1;
      })(),
      { end: () => ended++ },
    );
    expect(await done.next()).toEqual({ done: false, value: 1 });
    expect(await done.next()).toEqual({ done: true, value: undefined });
    const failing = interruptible(
      // biome-ignore lint/correctness/useYield: the source under test fails before it yields anything
      (async function* () {
        throw new Error('broken');
      })(),
      { end: () => ended++ },
    );
    await expect(failing.next()).rejects.toThrow('broken');
    expect(ended).toBe(2);
  });

  it('does not interrupt an iteration that is over', async () => {
    let interrupts = 0;
    const finished = interruptible(
      (async function* () {
        yield 1;
      })(),
      { interrupt: () => interrupts++ },
    );
    await finished.next();
    await finished.next();
    await finished.return(undefined);
    expect(interrupts).toBe(0);
  });
});
