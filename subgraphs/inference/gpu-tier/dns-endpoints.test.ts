/**
 * DNS targets in the endpoint list, resolved against a real DNS server on
 * loopback whose answers the test changes: addresses follow the answers, a
 * failed, silent or empty answer keeps the last ones, and the tier routes
 * (and counts at /metrics) what the names resolve to.
 */
import { createLogger } from '../../../lib/log';
import { startDnsServer, type TestDnsServer } from '../testing/dns-server';
import { DnsEndpoints, parseDnsTarget } from './dns-endpoints';
import { parseEndpointList } from './endpoint-list';
import { endpointMetrics } from './endpoint-metrics';
import { GpuTier } from './gpu-tier';

const log = createLogger({ service: 'dns-endpoints-test' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let dns: TestDnsServer;

beforeAll(async () => {
  dns = await startDnsServer();
});
afterAll(() => dns.stop());

/** Waits (bounded) until `read` returns what `expected` is. */
async function until<T>(read: () => T, expected: T, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (JSON.stringify(read()) === JSON.stringify(expected)) return;
    await sleep(20);
  }
  throw new Error(`${what}: expected ${JSON.stringify(expected)}, but got ${JSON.stringify(read())} after 4 s`);
}

describe('parseDnsTarget', () => {
  it("takes gRPC's dns: forms, with or without a DNS server", () => {
    expect(parseDnsTarget('dns:///triton-headless.sluice.svc:8001')).toEqual({ entry: 'dns:///triton-headless.sluice.svc:8001', host: 'triton-headless.sluice.svc', port: 8001 });
    expect(parseDnsTarget('dns://10.96.0.10/gpu:8001')).toMatchObject({ host: 'gpu', port: 8001, server: '10.96.0.10' });
    expect(parseDnsTarget('dns://[::1]:5353/gpu:8001')).toMatchObject({ server: '[::1]:5353' });
    expect(parseDnsTarget('dns:gpu:8001')).toMatchObject({ host: 'gpu', port: 8001 });
    expect(parseEndpointList('10.0.0.1:8001, dns:///gpu:8001')).toEqual(['10.0.0.1:8001', 'dns:///gpu:8001']);
  });

  it('refuses a target without a port, or with a DNS server that is not an address, naming it', () => {
    expect(() => parseEndpointList('a:1,dns:///gpu')).toThrow('a DNS target is expected as dns:///name:port or dns://dns-server[:port]/name:port, but got "dns:///gpu"');
    expect(() => parseDnsTarget('dns://kube-dns/gpu:8001')).toThrow('the DNS server of "dns://kube-dns/gpu:8001" is expected as an IP address with an optional :port, but got "kube-dns"');
  });
});

describe('DnsEndpoints', () => {
  it('follows the answers, mixed with plain addresses, and keeps the last addresses when the server fails, is silent, answers nothing or is down', async () => {
    const target = `dns://${dns.address}/gpu-a.sluice.test:8001`;
    dns.answer('gpu-a.sluice.test', ['127.0.0.1', '127.0.0.2']);
    const applied: string[][] = [];
    const endpoints = new DnsEndpoints({ refreshMs: 60_000, log, onChange: (list) => applied.push(list) });
    try {
      endpoints.setList(['10.9.9.9:1', target]);
      expect(applied).toEqual([['10.9.9.9:1']]); // the plain address at once; the name when it answers
      await until(() => endpoints.addresses, ['10.9.9.9:1', '127.0.0.1:8001', '127.0.0.2:8001'], 'first answer');

      // A pod goes, another comes; the server's order is not a change.
      dns.answer('gpu-a.sluice.test', ['127.0.0.3', '127.0.0.2']);
      await endpoints.refresh();
      dns.answer('gpu-a.sluice.test', ['127.0.0.2', '127.0.0.3']);
      await endpoints.refresh();
      expect(applied.slice(1)).toEqual([
        ['10.9.9.9:1', '127.0.0.1:8001', '127.0.0.2:8001'],
        ['10.9.9.9:1', '127.0.0.2:8001', '127.0.0.3:8001'],
      ]);

      const kept = ['10.9.9.9:1', '127.0.0.2:8001', '127.0.0.3:8001'];
      const [name] = endpoints.names;
      for (const answer of ['nxdomain', [], 'silent'] as const) {
        dns.answer('gpu-a.sluice.test', answer);
        const failures = name.failures;
        await endpoints.refresh();
        expect([answer, endpoints.addresses, name.failures]).toEqual([answer, kept, failures + 1]);
      }
      await dns.stop();
      await endpoints.refresh();
      expect(endpoints.addresses).toEqual(kept);
      expect(name.failures).toBe(4);

      await dns.start();
      dns.answer('gpu-a.sluice.test', ['127.0.0.4']);
      await endpoints.refresh();
      expect(endpoints.addresses).toEqual(['10.9.9.9:1', '127.0.0.4:8001']);
      // The name leaves the list: its addresses go with it.
      endpoints.setList(['10.9.9.9:1']);
      expect(applied.at(-1)).toEqual(['10.9.9.9:1']);
      expect(endpoints.names).toEqual([]);
    } finally {
      endpoints.close();
    }
  }, 30_000);

  it('resolves again every refresh interval by itself', async () => {
    dns.answer('gpu-b.sluice.test', ['127.0.0.1']);
    const endpoints = new DnsEndpoints({ refreshMs: 50, log, onChange: () => undefined });
    try {
      endpoints.setList([`dns://${dns.address}/gpu-b.sluice.test:9`]);
      await until(() => endpoints.addresses, ['127.0.0.1:9'], 'first answer');
      dns.answer('gpu-b.sluice.test', ['127.0.0.1', '127.0.0.5']);
      await until(() => endpoints.addresses, ['127.0.0.1:9', '127.0.0.5:9'], 'answer after a refresh interval');
    } finally {
      endpoints.close();
    }
  });
});

describe('a GpuTier on a DNS target', () => {
  it('starts before the name resolves (not ready, GPU_UNAVAILABLE), then takes its addresses, and counts failed resolutions at /metrics', async () => {
    const target = `dns://${dns.address}/gpu-c.sluice.test:1`;
    dns.answer('gpu-c.sluice.test', 'silent');
    const tier = new GpuTier({ endpoints: [target], dnsRefreshMs: 100, deadlineMs: 500, log, probeIntervalMs: 60_000 });
    try {
      expect(tier.endpoints).toEqual([]);
      expect(await tier.isReady()).toBe(false);
      expect(() => tier.pick('m')).toThrow(
        expect.objectContaining({ code: 'GPU_UNAVAILABLE', message: `model "m" cannot be routed: there is no GPU endpoint yet, no address has come from ${target}` }),
      );
      await until(() => tier.dnsNames[0].failures > 0, true, 'a silent server counted as a failure');
      dns.answer('gpu-c.sluice.test', ['127.0.0.1']);
      await until(() => tier.endpoints.map((e) => e.address), ['127.0.0.1:1'], 'endpoints after the answer');
      const metrics = endpointMetrics(tier);
      expect(metrics).toContain(`sluice_gpu_dns_addresses{target="${target}"} 1`);
      expect(metrics).toMatch(new RegExp(`sluice_gpu_dns_failures_total\\{target="${target.replace(/[./]/g, '\\$&')}"\\} [1-9]`));
      expect(metrics).toContain('# TYPE sluice_gpu_dns_failures_total counter');
    } finally {
      tier.close();
    }
  });
});
