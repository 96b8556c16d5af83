import { serviceEnv } from '../scripts/stack';

describe('serviceEnv', () => {
  const env = { SLUICE_IDENTITY_PRIVATE_KEY: 'private', SLUICE_IDENTITY_PRIVATE_KEY_FILE: '/run/secrets/x', SLUICE_IDENTITY_PUBLIC_KEY: 'public', REDIS_URL: 'redis://r' };

  it('gives the identity signing key to the gateway only', () => {
    expect(serviceEnv('gateway', env)).toEqual(env);
    for (const service of ['auth', 'billing', 'knowledge', 'inference', 'gpu-server'] as const) {
      expect(serviceEnv(service, env)).toEqual({ SLUICE_IDENTITY_PUBLIC_KEY: 'public', REDIS_URL: 'redis://r' });
    }
  });
});
