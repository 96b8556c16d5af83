import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import YAML from 'yaml';
import { DEFAULT_PORTS, PORT_VARIABLES, type PortName } from '../lib/config';
import { readSupergraphConfig } from '../gateway/supergraph';
import { parseRestrictions } from '../gpu-server/access/restrictions';
import { REDIS_SERVICE_USERS } from '../lib/redis-acl';
import { GPU_RESTRICTED_CATEGORIES } from '../scripts/stack';
import type { Manifest } from './support/kustomize';
import { envRequirements, isSet, SERVICE_MAINS, type ServiceName } from './support/service-requirements';

/**
 * No Docker engine runs here, so docker-compose.yml is checked as data: it
 * parses, names every service, and its ports, health checks and dependencies
 * agree with supergraph.yaml and the services' defaults.
 */
const ROOT = path.resolve(__dirname, '..');
const compose = YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Manifest>;
  secrets: Record<string, { file: string }>;
  networks: Record<string, { internal?: boolean }>;
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
      expect(service.environment[PORT_VARIABLES[subgraph.name as PortName]]).toBe(port);
      expect(gatewayEnv[`SLUICE_SUBGRAPH_${subgraph.name.toUpperCase()}_URL`]).toBe(`http://${subgraph.name}:${port}/graphql`);
      expect(compose.services.gateway.depends_on[subgraph.name]).toEqual({ condition: 'service_healthy' });
      expect(Number(port)).toBe(DEFAULT_PORTS[subgraph.name as PortName]);
    }
    expect(compose.services.gateway.ports).toEqual([`${DEFAULT_PORTS.gateway}:${DEFAULT_PORTS.gateway}`]);
  });

  it('publishes the gateway only; everything else is on the internal network alone', () => {
    expect(compose.networks.internal).toEqual({ internal: true });
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === 'gateway') {
        expect(service.networks).toEqual(['internal', 'public']);
        continue;
      }
      expect({ name, ports: service.ports, networks: service.networks }).toEqual({ name, ports: undefined, networks: ['internal'] });
    }
  });

  it('gives every service a health check probing its own port', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      expect({ name, test: service.healthcheck?.test }).toEqual({ name, test: expect.any(Array) });
      const probe = service.healthcheck.test.join(' ');
      const published = (service.ports ?? []).map((p: string) => p.split(':')[1]);
      if (published.length > 0) expect(published.some((port: string) => probe.includes(`:${port}/`))).toBe(true);
    }
  });

  it('keeps Redis data with append-only persistence, with a password and one ACL user per service, and starts services after it', () => {
    expect(compose.services.redis.command).toEqual(expect.arrayContaining(['--appendonly', 'yes', '--aclfile', '/run/secrets/redis_acl']));
    expect(compose.services.redis.healthcheck.test.join(' ')).toContain('--user default --pass');
    for (const name of REDIS_SERVICE_USERS) {
      const service = compose.services[name];
      expect(service.environment).toMatchObject({ REDIS_URL: 'redis://redis:6379', REDIS_USERNAME: name, REDIS_PASSWORD_FILE: `/run/secrets/redis_${name}_password` });
      expect(service.secrets).toContain(`redis_${name}_password`);
      // Nobody else's password.
      expect(service.secrets.filter((secret: string) => secret.startsWith('redis_'))).toEqual([`redis_${name}_password`]);
    }
    expect(compose.services.inference.depends_on['gpu-server']).toEqual({ condition: 'service_healthy' });
  });

  it("sets the gpu-server's three ports with the variables that set them, Triton's default model control, and every category but health behind the inference service's key", () => {
    const gpu = compose.services['gpu-server'];
    expect(gpu.environment).toMatchObject({
      GPU_SERVER_MODEL_CONTROL_MODE: 'none',
      GPU_SERVER_GRPC_RESTRICTED_PROTOCOL_FILE: '/run/secrets/gpu_restrictions',
      GPU_SERVER_HTTP_RESTRICTED_API_FILE: '/run/secrets/gpu_restrictions',
      GPU_SERVER_METRICS_TOKEN_FILE: '/run/secrets/metrics_token',
    });
    expect([...parseRestrictions([`${GPU_RESTRICTED_CATEGORIES}:k=v`], 'grpc', 'test').keys()].sort()).toEqual([
      'inference',
      'logging',
      'metadata',
      'model-config',
      'model-repository',
      'shared-memory',
      'statistics',
      'trace',
    ]);
    for (const [name, service] of Object.entries(compose.services)) {
      const holds = (service.secrets ?? []).filter((secret: string) => secret === 'gpu_key' || secret === 'gpu_restrictions');
      expect({ name, holds }).toEqual({ name, holds: name === 'inference' ? ['gpu_key'] : name === 'gpu-server' || name === 'triton' ? ['gpu_restrictions'] : [] });
    }
    expect(compose.services.triton.entrypoint.join(' ')).toContain('--grpc-restricted-protocol="$$(cat /run/secrets/gpu_restrictions)" --http-restricted-api="$$(cat /run/secrets/gpu_restrictions)"');
    // Triton serves a copy whose instances are on the GPUs, as the Kubernetes init container makes it.
    expect(compose.services.triton.entrypoint.join(' ')).toContain("sed -i 's/kind: KIND_CPU/kind: KIND_GPU/' /tmp/models/*/config.pbtxt && exec tritonserver --model-repository=/tmp/models ");
    expect(compose.services.inference.environment.INFERENCE_GPU_SERVER_KEY_FILE).toBe('/run/secrets/gpu_key');
    expect(gpu.environment).toMatchObject({
      [PORT_VARIABLES.gpuHttp]: String(DEFAULT_PORTS.gpuHttp),
      [PORT_VARIABLES.gpuGrpc]: String(DEFAULT_PORTS.gpuGrpc),
      [PORT_VARIABLES.gpuMetrics]: String(DEFAULT_PORTS.gpuMetrics),
    });
  });

  it('runs NVIDIA Triton on the same model repository with a GPU reservation, only in the triton profile', () => {
    const triton = compose.services.triton;
    expect(triton.profiles).toEqual(['triton']);
    expect(triton.build).toBe('./deploy/triton');
    expect(readFileSync(path.join(ROOT, 'deploy', 'triton', 'Dockerfile'), 'utf8')).toMatch(new RegExp(`^FROM nvcr\\.io/nvidia/tritonserver:${triton.image.split(':')[1]}-py3$`, 'm'));
    expect(triton.volumes).toEqual(['./gpu-server/model_repository:/models:ro']);
    expect(triton.deploy.resources.reservations.devices[0]).toMatchObject({ driver: 'nvidia', capabilities: ['gpu'] });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose's own interpolation, kept as written
    expect(compose.services.inference.environment.INFERENCE_GPU_ENDPOINT).toBe('${SLUICE_GPU_ENDPOINT:-gpu-server:8001}');
  });

  it('gives the gateway the private identity key, the subgraphs only the public one, and auth alone the session sealing key', () => {
    expect(compose.services.gateway.secrets).toEqual(['identity_private', 'redis_gateway_password']);
    for (const name of ['auth', 'billing', 'knowledge', 'inference']) {
      expect(compose.services[name].secrets).toContain('identity_public');
      expect(compose.services[name].secrets).not.toContain('identity_private');
      expect(compose.services[name].environment.SLUICE_IDENTITY_PRIVATE_KEY_FILE).toBeUndefined();
    }
    for (const [name, service] of Object.entries(compose.services)) expect({ name, sealing: (service.secrets ?? []).includes('session_sealing_key') }).toEqual({ name, sealing: name === 'auth' });
  });

  it('requires a token on every /metrics, and names an existing secret file for every secret', () => {
    expect(compose.services.gateway.env_file).toEqual(['./.data/secrets/gateway-metrics.env']);
    expect(compose.services.inference.environment.INFERENCE_METRICS_TOKEN_FILE).toBe('/run/secrets/metrics_token');
    const used = new Set(Object.values(compose.services).flatMap((service) => service.secrets ?? []));
    expect([...used].sort()).toEqual(Object.keys(compose.secrets).sort());
    for (const { file } of Object.values(compose.secrets)) expect(file).toMatch(/^\.\/\.data\/secrets\/[a-z0-9.-]+$/);
  });

  it('runs each Sluice service from its compiled entry point in the image (npm run build), with its port variable and a health check on that port', () => {
    const buildConfig = path.join(ROOT, 'tsconfig.build.json');
    const built = ts.parseJsonConfigFileContent(ts.readConfigFile(buildConfig, ts.sys.readFile).config, ts.sys, ROOT, undefined, buildConfig);
    expect(built.options.outDir).toBe(path.join(ROOT, 'dist'));
    for (const [name, main] of Object.entries(SERVICE_MAINS)) {
      expect(built.fileNames).toContain(path.join(ROOT, main));
      const service = compose.services[name];
      expect(service.command).toEqual(['node', `dist/${main.replace(/\.ts$/, '.js')}`]);
      const ports = name === 'gpu-server' ? (['gpuHttp'] as PortName[]) : [name as PortName];
      for (const port of ports) {
        const value = service.environment[PORT_VARIABLES[port]];
        expect({ name, value }).toEqual({ name, value: String(DEFAULT_PORTS[port]) });
        expect(service.healthcheck.test.join(' ')).toContain(`127.0.0.1:${value}/`);
      }
    }
  });

  it("sets every variable whose default in a service's code is a loopback address, and mounts every *_FILE it names", () => {
    for (const name of Object.keys(SERVICE_MAINS) as ServiceName[]) {
      const { environment, secrets = [] } = compose.services[name];
      for (const variable of envRequirements(name).loopbackDefaults) expect({ name, variable, set: isSet(environment, variable) }).toEqual({ name, variable, set: true });
      for (const [variable, file] of Object.entries(environment as Record<string, string>).filter(([variable]) => variable.endsWith('_FILE'))) {
        expect({ name, variable, mounted: file.startsWith('/run/secrets/') && secrets.includes(file.slice('/run/secrets/'.length)) }).toEqual({ name, variable, mounted: true });
      }
    }
  });
});
