import { VerificationCache } from './verification-cache';

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

function cache(onServe?: (error: unknown, ageMs: number) => void, staleMs = STALE_MS) {
  return new VerificationCache<string>({ ttlMs: TTL_MS, maxEntries: 10, staleIfError: { ms: staleMs, when: (error) => error instanceof Outage, onServe } });
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
    let release!: (value: string) => void;
    const first = answers.get('key', () => new Promise<string>((resolve) => (release = resolve)));
    now += TTL_MS + 10; // the answer's expiry counts from when the question was sent
    release('valid');
    await expect(first).resolves.toBe('valid');
    await expect(answers.get('key', failure(new Outage()))).resolves.toBe('valid');
  });
});
