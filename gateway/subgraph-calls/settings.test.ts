import { subgraphCallSettingsFromEnv } from './settings';

describe('subgraphCallSettingsFromEnv', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('applies a per-subgraph timeout over the gateway-wide one', () => {
    process.env.GATEWAY_SUBGRAPH_TIMEOUT_MS = '1500';
    process.env.GATEWAY_SUBGRAPH_TIMEOUTS = 'inference=90000, knowledge=60000';
    const settingsFor = subgraphCallSettingsFromEnv();
    expect(settingsFor('inference').timeoutMs).toBe(90_000);
    expect(settingsFor('knowledge').timeoutMs).toBe(60_000);
    expect(settingsFor('billing')).toMatchObject({ timeoutMs: 1_500, retries: 2, breakerFailures: 5 });
  });

  it('gives generation its long timeout by default', () => {
    delete process.env.GATEWAY_SUBGRAPH_TIMEOUTS;
    delete process.env.GATEWAY_SUBGRAPH_TIMEOUT_MS;
    const settingsFor = subgraphCallSettingsFromEnv();
    expect([settingsFor('inference').timeoutMs, settingsFor('auth').timeoutMs]).toEqual([300_000, 30_000]);
  });

  it('refuses a malformed override, naming the variable and the entry', () => {
    process.env.GATEWAY_SUBGRAPH_TIMEOUTS = 'inference=90000,billing:5';
    expect(() => subgraphCallSettingsFromEnv()).toThrow('GATEWAY_SUBGRAPH_TIMEOUTS expects comma-separated subgraph=milliseconds entries (e.g. "inference=300000"), but got "billing:5"');
  });
});
