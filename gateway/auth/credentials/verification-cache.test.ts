import { OverdueAnswer, VerificationCache } from './verification-cache';

/** The cache reads the time from Date.now: the tests move it by hand, so no assertion waits on a timer. */
let now = 1_000_000;
beforeEach(() => {
  now = 1_000_000;
  jest.spyOn(Date, 'now').mockImplementation(() => now);
});
afterEach(() => jest.restoreAllMocks());

class Outage extends Error {}
const TTL_MS = 1_000;
const STALE_MS = 60_000;

function cache(onServe?: (error: unknown, ageMs: number) => void, staleMs = STALE_MS, patienceMs?: number) {
  return new VerificationCache<string>({ ttlMs: TTL_MS, maxEntries: 10, staleIfError: { ms: staleMs, when: (error) => error instanceof Outage, onServe, patienceMs } });
}
/** A question whose answer the test gives (or refuses) when it likes. */
function held() {
  let release!: (value: string) => void;
  let fail!: (error: Error) => void;
  const ask = () => new Promise<string>((resolve, reject) => ([release, fail] = [resolve, reject]));
  return { ask, release: (value: string) => release(value), fail: (error: Error) => fail(error) };
}
const answer = (value: string) => () => Promise.resolve(value);
const failure = (error: Error) => () => Promise.reject(error);

describe('VerificationCache, stale if error', () => {
  it('uses the last answer past its expiry only when asking fails with an outage, and reports each use', async () => {
    const served: [unknown, number][] = [];
    const answers = cache((error, ageMs) => served.push([error, ageMs]));
    await answers.get('key', answer('valid'));
    now += TTL_MS + 5_000;
    const outage = new Outage('auth is unreachable');
    await expect(answers.get('key', failure(outage))).resolves.toBe('valid');
    expect(served).toEqual([[outage, TTL_MS + 5_000]]);
    // A failure that is no outage (a misconfigured link) is not papered over.
    await expect(answers.get('key', failure(new Error('auth refused the gateway')))).rejects.toThrow('auth refused the gateway');
    expect(served).toHaveLength(1);
  });

  it('keeps serving negative answers as negative', async () => {
    const answers = cache();
    await answers.get('revoked', answer('revoked'));
    now += TTL_MS;
    await expect(answers.get('revoked', failure(new Outage()))).resolves.toBe('revoked');
  });

  it('refuses a key it never had an answer for', async () => {
    await expect(cache().get('never-seen', failure(new Outage('down')))).rejects.toThrow('down');
  });

  it('uses no answer once it is staleIfError.ms past its expiry', async () => {
    const answers = cache();
    await answers.get('key', answer('valid'));
    now += TTL_MS + STALE_MS - 1;
    await expect(answers.get('key', failure(new Outage()))).resolves.toBe('valid');
    now += 1;
    await expect(answers.get('key', failure(new Outage('still down')))).rejects.toThrow('still down');
  });

  it('with staleIfError.ms 0, uses no expired answer', async () => {
    const answers = cache(undefined, 0);
    await answers.get('key', answer('valid'));
    now += TTL_MS;
    await expect(answers.get('key', failure(new Outage('down')))).rejects.toThrow('down');
  });

  it('never caches the failure: the next look-up asks again, and a fresh answer replaces the stale one', async () => {
    const answers = cache();
    await answers.get('key', answer('valid'));
    now += TTL_MS;
    const ask = jest.fn(failure(new Outage()));
    await answers.get('key', ask);
    await answers.get('key', ask);
    expect(ask).toHaveBeenCalledTimes(2);
    await expect(answers.get('key', answer('revoked'))).resolves.toBe('revoked');
    now += TTL_MS;
    await expect(answers.get('key', failure(new Outage()))).resolves.toBe('revoked');
  });

  it('keeps an answer that arrives after its own expiry, to stand in during a later outage', async () => {
    const answers = cache();
    const question = held();
    const first = answers.get('key', question.ask);
    now += TTL_MS + 10; // the answer's expiry counts from when the question was sent
    question.release('valid');
    await expect(first).resolves.toBe('valid');
    await expect(answers.get('key', failure(new Outage()))).resolves.toBe('valid');
  });

  it('tells onAnswer of each answer asked, and holds what another process learnt as if it had asked', async () => {
    const told: [string, string, number][] = [];
    const here = new VerificationCache<string>({ ttlMs: TTL_MS, maxEntries: 10, onAnswer: (key, value, askedAt) => told.push([key, value, askedAt]) });
    const there = new VerificationCache<string>({ ttlMs: TTL_MS, maxEntries: 10, staleIfError: { ms: STALE_MS, when: (error) => error instanceof Outage } });
    const askedAt = now;
    await here.get('key', answer('valid'));
    expect(told).toEqual([['key', 'valid', askedAt]]);
    there.learn(...told[0]);
    await expect(there.get('key', failure(new Error('not asked: learnt within ttlMs')))).resolves.toBe('valid');
    now += TTL_MS;
    await expect(there.get('key', failure(new Outage()))).resolves.toBe('valid');
    now += STALE_MS;
    await expect(there.get('key', failure(new Outage('past the bound')))).rejects.toThrow('past the bound');
  });

  describe('with patienceMs', () => {
    it('waits no longer for a fresh answer when an earlier one can stand in; the late answer then refreshes the cache', async () => {
      const served: unknown[] = [];
      const answers = cache((error) => served.push(error), STALE_MS, 20);
      await answers.get('key', answer('valid'));
      now += TTL_MS;
      const question = held();
      await expect(answers.get('key', question.ask)).resolves.toBe('valid');
      expect(served).toEqual([new OverdueAnswer('no answer within 20 ms')]);
      question.release('revoked');
      await expect(answers.get('key', failure(new Error('not asked: the fresh answer is cached')))).resolves.toBe('revoked');
    });

    it('reports a stand-in once, though the question fails after it', async () => {
      const served: unknown[] = [];
      const answers = cache((error) => served.push(error), STALE_MS, 20);
      await answers.get('key', answer('valid'));
      now += TTL_MS;
      const question = held();
      await expect(answers.get('key', question.ask)).resolves.toBe('valid');
      question.fail(new Outage());
      await new Promise((resolve) => setImmediate(resolve));
      expect(served).toHaveLength(1);
    });

    it('counts the patience from when the question was sent: joining an overdue question costs no further wait', async () => {
      const answers = cache(undefined, STALE_MS, 900);
      await answers.get('key', answer('valid'));
      now += TTL_MS;
      const question = held();
      const first = answers.get('key', question.ask).then(() => 'first');
      now += 900; // the question is overdue, and still young enough to be shared
      const joiner = answers.get('key', failure(new Error('not asked: the question in flight is shared'))).then(() => 'joiner');
      await expect(Promise.race([first, joiner])).resolves.toBe('joiner');
      question.release('valid');
      await first;
    });

    it('takes a fresh answer that comes in time, and waits as long as it takes when nothing could stand in', async () => {
      const served: unknown[] = [];
      const answers = cache((error) => served.push(error), STALE_MS, 20);
      await answers.get('key', answer('valid'));
      now += TTL_MS;
      await expect(answers.get('key', answer('fresh'))).resolves.toBe('fresh');
      await expect(answers.get('never-seen', () => new Promise((resolve) => setTimeout(() => resolve('late'), 60)))).resolves.toBe('late');
      expect(served).toEqual([]);
    });
  });
});
