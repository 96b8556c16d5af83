import { VerifiedTokens } from './verified-tokens';

describe('VerifiedTokens', () => {
  it('answers for a token until its expiry, then forgets it', () => {
    const tokens = new VerifiedTokens<{ sub: string }>(10);
    tokens.set('token-a', { sub: 'ada' }, 1_000);
    expect(tokens.get('token-a', 999)).toEqual({ sub: 'ada' });
    expect(tokens.get('token-a', 1_000)).toBeUndefined();
    expect(tokens.get('token-a', 500)).toBeUndefined();
    expect(tokens.get('token-b', 500)).toBeUndefined();
  });

  it('keeps at most maxEntries, dropping the oldest', () => {
    const tokens = new VerifiedTokens<number>(2);
    tokens.set('a', 1, 10_000);
    tokens.set('b', 2, 10_000);
    tokens.set('c', 3, 10_000);
    expect([tokens.get('a', 0), tokens.get('b', 0), tokens.get('c', 0)]).toEqual([undefined, 2, 3]);
  });
});
