import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DEFAULT_PORTS, PORT_VARIABLES, PortName } from '../lib/config';
import { readSupergraphConfig } from '../gateway/supergraph';

/**
 * No Docker engine runs here, so docker-compose.yml is checked as data: it
 * parses, names every service, and its ports, health checks and dependencies
 * agree with supergraph.yaml and the services' defaults.
 */
const ROOT = path.resolve(__dirname, '..');
const compose = YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, any>;
  secrets: Record<string, { file: string }>;
};

describe('docker-compose.yml', () => {
  it('defines redis, the gpu-server, the four subgraphs, the gateway and a triton profile', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['auth', 'billing', 'gateway', 'gpu-server', 'inference', 'knowledge', 'redis', 'triton']);
  });

  it('runs every subgraph of supergraph.yaml on the port its routing_url names, and routes the gateway to it by service name', () => {
    const gatewayEnv = compose.services.gateway.environment;
    for (const subgraph of readSupergraphConfig(path.join(ROOT, 'supergraph.yaml'))) {
      const port = new URL(subgraph.url).port;
      const service = compose.services[subgraph.name];
      expect({ name: subgraph.name, ports: service.ports }).toEqual({ name: subgraph.name, ports: [`${port}:${port}`] });
      expect(service.environment[PORT_VARIABLES[subgraph.name as PortName]]).toBe(port);
      expect(gatewayEnv[`SLUICE_SUBGRAPH_${subgraph.name.toUpperCase()}_URL`]).toBe(`http://${subgraph.name}:${port}/graphql`);
      expect(compose.services.gateway.depends_on[subgraph.name]).toEqual({ condition: 'service_healthy' });
      expect(Number(port)).toBe(DEFAULT_PORTS[subgraph.name as PortName]);
    }
    expect(compose.services.gateway.ports).toEqual([`${DEFAULT_PORTS.gateway}:${DEFAULT_PORTS.gateway}`]);
  });

  it('gives every service a health check probing its own port', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      expect({ name, test: service.healthcheck?.test }).toEqual({ name, test: expect.any(Array) });
      const probe = service.healthcheck.test.join(' ');
      const published = (service.ports ?? []).map((p: string) => p.split(':')[1]);
      if (published.length > 0) expect(published.some((port: string) => probe.includes(`:${port}/`))).toBe(true);
    }
  });

  it('keeps Redis data with append-only persistence and starts services after it', () => {
    expect(compose.services.redis.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    for (const name of ['auth', 'billing', 'knowledge', 'inference', 'gateway']) {
      expect(compose.services[name].environment.REDIS_URL).toBe('redis://redis:6379');
    }
    expect(compose.services.inference.depends_on['gpu-server']).toEqual({ condition: 'service_healthy' });
  });

  it("publishes the gpu-server's three ports with the variables that set them", () => {
    const gpu = compose.services['gpu-server'];
    expect(gpu.ports).toEqual([`${DEFAULT_PORTS.gpuHttp}:${DEFAULT_PORTS.gpuHttp}`, `${DEFAULT_PORTS.gpuGrpc}:${DEFAULT_PORTS.gpuGrpc}`, `${DEFAULT_PORTS.gpuMetrics}:${DEFAULT_PORTS.gpuMetrics}`]);
    expect(gpu.environment).toMatchObject({
      [PORT_VARIABLES.gpuHttp]: String(DEFAULT_PORTS.gpuHttp),
      [PORT_VARIABLES.gpuGrpc]: String(DEFAULT_PORTS.gpuGrpc),
      [PORT_VARIABLES.gpuMetrics]: String(DEFAULT_PORTS.gpuMetrics),
    });
  });

  it('runs NVIDIA Triton on the same model repository with a GPU reservation, only in the triton profile', () => {
    const triton = compose.services.triton;
    expect(triton.profiles).toEqual(['triton']);
    expect(triton.image).toMatch(/^nvcr\.io\/nvidia\/tritonserver:/);
    expect(triton.volumes).toEqual(['./gpu-server/model_repository:/models:ro']);
    expect(triton.deploy.resources.reservations.devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
    expect(compose.services.inference.environment.INFERENCE_GPU_ENDPOINT).toBe('${SLUICE_GPU_ENDPOINT:-gpu-server:8001}');
  });

  it('gives the gateway the private identity key and the subgraphs only the public one', () => {
    expect(compose.services.gateway.secrets).toEqual(['identity_private']);
    for (const name of ['auth', 'billing', 'knowledge', 'inference']) {
      expect(compose.services[name].secrets).toEqual(['identity_public']);
      expect(compose.services[name].environment.SLUICE_IDENTITY_PRIVATE_KEY_FILE).toBeUndefined();
    }
  });
});
