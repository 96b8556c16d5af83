import { ConfigError } from '../lib/config';
import { gatewayConfigFromEnv } from './config';

describe('gatewayConfigFromEnv', () => {
  it('reads the variables it is given, not the process environment, with the documented defaults for the rest', () => {
    process.env.GATEWAY_MAX_DEPTH = '3';
    try {
      const config = gatewayConfigFromEnv({ GATEWAY_MAX_COST: '42', GATEWAY_SANDBOX: 'false', GATEWAY_APQ: 'off' });
      expect(config.demandControl).toEqual({ mode: 'auto', maxCost: 42, defaultListSize: 10, extension: false });
      expect(config.operationLimits.maxDepth).toBe(64);
      expect(config.http).toEqual({ bodyLimitBytes: 2 * 1024 * 1024, sandbox: false, introspection: true });
      expect(config.subscriptions).toEqual({ perConnection: 16, multipartHeartbeatMs: 5_000, wsKeepAliveMs: 12_000 });
      expect([config.apq, config.safelist, config.responseCache]).toEqual([undefined, undefined, { maxEntryBytes: 512 * 1024 }]);
      expect([config.auth.credentialsCacheMs, config.auth.credentialsStaleIfErrorMs]).toEqual([10_000, 300_000]);
    } finally {
      delete process.env.GATEWAY_MAX_DEPTH;
    }
  });

  it('refuses a bad value, naming the variable, what it expects and what it got', () => {
    expect(() => gatewayConfigFromEnv({ GATEWAY_SUBSCRIPTIONS_PER_CONNECTION: '0' })).toThrow(
      new ConfigError('GATEWAY_SUBSCRIPTIONS_PER_CONNECTION expects an integer between 1 and 9007199254740991, but got "0"'),
    );
    expect(() => gatewayConfigFromEnv({ GATEWAY_RATE_LIMIT_ON_REDIS_ERROR: 'maybe' })).toThrow(/^GATEWAY_RATE_LIMIT_ON_REDIS_ERROR expects "open" .* or "closed" .*, but got "maybe"$/);
    expect(() => gatewayConfigFromEnv({ GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS: '-1' })).toThrow(
      new ConfigError('GATEWAY_CREDENTIALS_STALE_IF_ERROR_MS expects an integer between 0 and 9007199254740991, but got "-1"'),
    );
    expect(() => gatewayConfigFromEnv({ GATEWAY_SAFELIST: 'true' })).toThrow('GATEWAY_SAFELIST=true expects GATEWAY_SAFELIST_FILE to name a persisted query manifest, but it is not set');
  });
});
