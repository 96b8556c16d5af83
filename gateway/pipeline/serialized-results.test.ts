import { SerializedResults } from './serialized-results';

/** Apollo Server's own serialization (runHttpQuery's prettyJSONStringify of errors, data, extensions in that order). */
const apollo = (result: { errors?: unknown; data?: unknown; extensions?: unknown }) => `${JSON.stringify({ errors: result.errors, data: result.data, extensions: result.extensions })}\n`;

describe('SerializedResults', () => {
  const data = { me: { id: 'u1', name: 'Ada "the" \u2028 first', documents: [{ id: 'd1' }, null] } };

  it('writes what Apollo Server writes, for data alone, with errors and with extensions', () => {
    const results = new SerializedResults();
    const errors = [{ message: 'no', path: ['me', 'documents', 1], extensions: { code: 'FORBIDDEN' } }];
    const extensions = { cost: { estimated: 3 } };
    for (const result of [{ data }, { errors, data }, { data, extensions }, { errors, data, extensions }, { errors }, { data: null, errors }]) {
      expect(results.stringify(result)).toBe(apollo(result));
    }
  });

  it('serializes one data object once: every caller of a shared execution gets the same string, and the same bytes', () => {
    const results = new SerializedResults();
    const shared = structuredClone(data);
    const [alice, bob] = [{}, {}];
    results.willSend(alice, { data: shared });
    results.willSend(bob, { data: shared });
    const aliceBody = results.stringify({ data: shared });
    // Edited after the first serialization (which nothing may do): the second caller still gets the first text, proving it is not serialized again.
    shared.me.id = 'changed';
    const bobBody = results.stringify({ data: shared });
    expect(bobBody).toBe(aliceBody);
    const aliceBytes = results.bytesFor(alice, aliceBody);
    expect(Buffer.isBuffer(aliceBytes)).toBe(true);
    expect(results.bytesFor(bob, bobBody)).toBe(aliceBytes);
    expect(aliceBytes.toString()).toBe(apollo({ data }));
  });

  it('gives back the text itself when the body is not the noted result alone (errors, extensions, a batch, nothing noted)', () => {
    const results = new SerializedResults();
    const caller = {};
    const errors = [{ message: 'no' }];
    results.willSend(caller, { data, errors });
    const withErrors = results.stringify({ data, errors });
    expect(results.bytesFor(caller, withErrors)).toBe(withErrors);

    results.willSend(caller, { data });
    const alone = results.stringify({ data });
    const batch = `[${alone.trimEnd()},${alone.trimEnd()}]`;
    expect(results.bytesFor(caller, batch)).toBe(batch);
    expect(results.bytesFor({}, alone)).toBe(alone);
  });

  it('sends the JSON a data object was parsed from (a response cache hit) instead of serializing it again', () => {
    const results = new SerializedResults();
    const stored = '{"models":[{"id":"m1"}]}';
    const parsed = JSON.parse(stored) as Record<string, unknown>;
    results.adopt(parsed, stored);
    expect(results.dataJson(parsed)).toBe(stored);
    expect(results.stringify({ data: parsed })).toBe(`{"data":${stored}}\n`);
  });
});
