import { FORWARDS_IDENTITY_TO, identityAudience } from './service-calls';

describe('identity audiences', () => {
  it('holds each subgraph and the siblings it forwards the identity to, transitively', () => {
    expect(identityAudience('knowledge')).toEqual(['knowledge', 'inference', 'billing']);
    expect(identityAudience('inference')).toEqual(['inference', 'billing']);
    expect(identityAudience('auth')).toEqual(['auth']);
    expect(identityAudience('billing')).toEqual(['billing']);
  });

  it('gives a service the graph does not list (nor an Object property name) itself alone', () => {
    expect(identityAudience('ticks')).toEqual(['ticks']);
    expect(identityAudience('constructor')).toEqual(['constructor']);
  });

  it('returns the same frozen array for a service every time', () => {
    expect(identityAudience('knowledge')).toBe(identityAudience('knowledge'));
    expect(Object.isFrozen(identityAudience('knowledge'))).toBe(true);
  });

  it('names only services it has an entry for', () => {
    const services = Object.keys(FORWARDS_IDENTITY_TO);
    for (const targets of Object.values(FORWARDS_IDENTITY_TO)) for (const target of targets) expect(services).toContain(target);
  });
});
