import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { readSupergraphConfig } from '../gateway/supergraph';
import { DEFAULT_PORTS, PORT_VARIABLES, type PortName } from '../lib/config';
import { REDIS_SERVICE_USERS } from '../lib/redis-acl';
import { parseEndpointList } from '../subgraphs/inference/gpu-tier/endpoint-list';
import { type K8sObject, type Manifest, podContainers, renderKustomization } from './support/kustomize';
import { envRequirements, isSet, reads, type ServiceName } from './support/service-requirements';

/**
 * No cluster runs here: deploy/kubernetes is rendered as `kubectl kustomize`
 * would (test/support/kustomize.ts), every object is validated against the
 * Kubernetes API schemas (kubernetes-models), and the objects are checked
 * against each other and against the code: ports, probes, secrets, the
 * variables each service reads, and the network flows.
 */
const ROOT = path.resolve(__dirname, '..');
const KUBERNETES = path.join(ROOT, 'deploy', 'kubernetes');
const compose = YAML.parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { environment?: Record<string, string> }> };

// The secrets an operator provides are the files `npm run keys` writes: render with a real set of them.
let keys: string;
const secretFilesRead = new Set<string>();
beforeAll(() => {
  keys = mkdtempSync(path.join(tmpdir(), 'sluice-k8s-keys-'));
  execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'generate-keys.ts'), keys], { cwd: ROOT, stdio: 'pipe' });
});
afterAll(() => rmSync(keys, { recursive: true, force: true }));

function render(overlay: string): K8sObject[] {
  return renderKustomization(path.join(KUBERNETES, 'overlays', overlay), {
    readFile: (file) => {
      const relative = path.relative(path.join(KUBERNETES, 'overlays', overlay), file);
      if (path.dirname(relative) !== 'secrets') return readFileSync(file, 'utf8');
      secretFilesRead.add(path.basename(relative));
      return readFileSync(path.join(keys, path.basename(relative)), 'utf8');
    },
  });
}

const SERVICES = ['gateway', 'auth', 'billing', 'knowledge', 'inference'] as const;
const OVERLAYS = { dev: { gpuTier: 'gpu-server', redis: true }, production: { gpuTier: 'triton', redis: false } } as const;

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const find = (objects: K8sObject[], kind: string, name: string) => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found)
    throw new Error(
      `expected a ${kind} named ${name}, found ${
        byKind(objects, kind)
          .map((o) => o.metadata.name)
          .join(', ') || 'none'
      }`,
    );
  return found;
};
const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) => Object.entries(selector ?? {}).every(([key, value]) => labels?.[key] === value);
const component = (workload: K8sObject): string => workload.spec.template.metadata.labels['app.kubernetes.io/component'];

/** A container's variables as the kubelet sets them: its ConfigMaps' keys, then its own env (values from secrets as `<secret:name/key>`, from its resources as `<limits.cpu>`). */
function containerEnv(objects: K8sObject[], container: Manifest): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) Object.assign(env, find(objects, 'ConfigMap', source.configMapRef.name).data);
  for (const { name, value, valueFrom } of container.env ?? []) {
    if (valueFrom?.secretKeyRef) env[name] = `<secret:${valueFrom.secretKeyRef.name}/${valueFrom.secretKeyRef.key}>`;
    else if (valueFrom?.resourceFieldRef) env[name] = `<${valueFrom.resourceFieldRef.resource}>`;
    else env[name] = value;
  }
  return env;
}

/** The container port a Service's targetPort or a probe's port names, in `container`. */
const containerPort = (container: Manifest, port: string | number) =>
  (container.ports ?? []).find((p: { name?: string; containerPort: number }) => (typeof port === 'number' ? p.containerPort === port : p.name === port));

describe.each(Object.entries(OVERLAYS))('deploy/kubernetes/overlays/%s', (overlay, { gpuTier, redis }) => {
  let objects: K8sObject[];
  let workloads: K8sObject[];
  beforeAll(() => {
    objects = render(overlay);
    workloads = byKind(objects, 'Deployment');
  });

  it('renders objects that the Kubernetes API schemas accept, in the overlay namespace, labelled part of Sluice', () => {
    expect(objects.length).toBeGreaterThan(20);
    for (const o of objects) {
      const Model = require(`kubernetes-models/${o.apiVersion}/${o.kind}`)[o.kind];
      expect(() => new Model(o).validate()).not.toThrow();
      expect({ object: `${o.kind}/${o.metadata.name}`, namespace: o.metadata.namespace, partOf: o.metadata.labels?.['app.kubernetes.io/part-of'] }).toEqual({
        object: `${o.kind}/${o.metadata.name}`,
        namespace: overlay === 'dev' ? 'sluice-dev' : 'sluice',
        partOf: 'sluice',
      });
    }
  });

  it('runs each service from the one Sluice image with its compiled entry point, and the GPU tier it names', () => {
    expect(workloads.map(component).sort()).toEqual([...SERVICES, gpuTier, ...(redis ? ['redis'] : [])].sort());
    for (const name of SERVICES) {
      const [container] = find(objects, 'Deployment', name).spec.template.spec.containers;
      expect(container.command).toEqual(['node', `dist/${name === 'gateway' ? 'gateway' : `subgraphs/${name}`}/main.js`]);
      expect(container.image).toBe(overlay === 'dev' ? 'sluice:dev' : 'registry.example.com/sluice:0.1.0');
    }
  });

  it('gives every container probes on its own ports, resource requests and limits, and runs every pod as non-root', () => {
    for (const workload of workloads) {
      const pod = workload.spec.template.spec;
      expect({ workload: workload.metadata.name, runAsNonRoot: pod.securityContext?.runAsNonRoot }).toEqual({ workload: workload.metadata.name, runAsNonRoot: true });
      expect(matches(workload.spec.selector.matchLabels, workload.spec.template.metadata.labels)).toBe(true);
      for (const container of podContainers(workload)) {
        const where = `${workload.metadata.name}/${container.name}`;
        for (const kind of ['requests', 'limits'])
          expect({ where, kind, resources: Object.keys(container.resources?.[kind] ?? {}) }).toEqual({ where, kind, resources: expect.arrayContaining(['cpu', 'memory']) });
        if (pod.initContainers?.includes(container)) continue;
        for (const probe of ['readinessProbe', 'livenessProbe']) {
          expect({ where, probe, set: container[probe] !== undefined }).toEqual({ where, probe, set: true });
          const port = container[probe].httpGet?.port ?? container[probe].tcpSocket?.port;
          if (port !== undefined) expect({ where, probe, port: containerPort(container, port)?.containerPort }).toEqual({ where, probe, port: expect.any(Number) });
        }
      }
    }
  });

  it('probes /ready for readiness and /health for liveness on every service, and drains after a preStop pause', () => {
    for (const name of SERVICES) {
      const deployment = find(objects, 'Deployment', name);
      const [container] = deployment.spec.template.spec.containers;
      expect(container.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' });
      expect(container.livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
      const pause = Number(container.lifecycle.preStop.exec.command[1]);
      // The pause, then up to 10 s of drain (lib/http-service.ts) fit in the grace period.
      expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(pause + 10);
    }
  });

  it('keeps the gateway highly available: ≥ 2 replicas in production, an autoscaler, a disruption budget, long stream timeouts at the Ingress', () => {
    const gateway = find(objects, 'Deployment', 'gateway');
    // As many workers as the CPU limit, not as the node has CPUs (the default).
    expect(containerEnv(objects, gateway.spec.template.spec.containers[0]).GATEWAY_WORKERS).toBe('<limits.cpu>');
    if (overlay === 'production') expect(gateway.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(gateway.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(60);
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'gateway');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'gateway' });
    expect(hpa.spec.minReplicas).toBe(overlay === 'production' ? 2 : 1);
    const pdb = find(objects, 'PodDisruptionBudget', 'gateway');
    expect(matches(pdb.spec.selector.matchLabels, gateway.spec.template.metadata.labels)).toBe(true);
    const ingress = find(objects, 'Ingress', 'gateway');
    expect(Number(ingress.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
    expect(ingress.metadata.annotations?.['nginx.ingress.kubernetes.io/proxy-buffering']).toBe('off');
    for (const rule of ingress.spec.rules) for (const { backend } of rule.http.paths) expect(backend.service).toEqual({ name: 'gateway', port: { name: 'http' } });
  });

  it('points every Service at one workload and at ports its pods have', () => {
    for (const service of byKind(objects, 'Service')) {
      const targets = workloads.filter((w) => matches(service.spec.selector, w.spec.template.metadata.labels));
      expect({ service: service.metadata.name, targets: targets.length }).toEqual({ service: service.metadata.name, targets: 1 });
      for (const port of service.spec.ports) {
        const found = targets[0].spec.template.spec.containers.some((c: Manifest) => containerPort(c, port.targetPort)?.containerPort === port.port);
        expect({ service: service.metadata.name, port: port.name, found }).toEqual({ service: service.metadata.name, port: port.name, found: true });
      }
    }
  });

  it('defines every Secret and ConfigMap a pod references, with the keys it reads, and mounts every *_FILE a variable names', () => {
    for (const workload of workloads) {
      const pod = workload.spec.template.spec;
      for (const volume of pod.volumes ?? []) {
        if (volume.secret) find(objects, 'Secret', volume.secret.secretName);
        if (volume.configMap) find(objects, 'ConfigMap', volume.configMap.name);
      }
      for (const container of podContainers(workload)) {
        for (const { valueFrom } of container.env ?? []) {
          if (valueFrom?.secretKeyRef) expect(Object.keys(find(objects, 'Secret', valueFrom.secretKeyRef.name).data)).toContain(valueFrom.secretKeyRef.key);
          // A resource a variable reads is one the container sets.
          if (valueFrom?.resourceFieldRef) {
            const [kind, resource] = valueFrom.resourceFieldRef.resource.split('.');
            expect({ container: valueFrom.resourceFieldRef.containerName, set: container.resources?.[kind]?.[resource] !== undefined }).toEqual({ container: container.name, set: true });
          }
        }
        const mounted = (file: string) => {
          const mount = (container.volumeMounts ?? []).find((m: { mountPath: string }) => path.dirname(file) === m.mountPath);
          const volume = mount && pod.volumes.find((v: { name: string }) => v.name === mount.name);
          return volume?.secret ? Object.keys(find(objects, 'Secret', volume.secret.secretName).data).includes(path.basename(file)) : false;
        };
        const files = [...Object.entries(containerEnv(objects, container))].filter(([name]) => name.endsWith('_FILE')).map(([, file]) => file);
        for (const file of files)
          expect({ where: `${workload.metadata.name}/${container.name}`, file, mounted: mounted(file) }).toEqual({ where: `${workload.metadata.name}/${container.name}`, file, mounted: true });
        for (const command of [container.command ?? []].flat()) {
          for (const [file] of String(command).matchAll(/\/run\/secrets\/[\w./-]+/g))
            expect({ where: `${workload.metadata.name}/${container.name}`, file, mounted: mounted(file) }).toEqual({ where: `${workload.metadata.name}/${container.name}`, file, mounted: true });
        }
      }
    }
  });

  it('sets every variable a service reads that docker-compose.yml sets or whose default is a loopback address, and its port variable to its container port', () => {
    for (const name of [...SERVICES, ...(gpuTier === 'gpu-server' ? (['gpu-server'] as const) : [])]) {
      const [container] = find(objects, 'Deployment', name).spec.template.spec.containers;
      const env = containerEnv(objects, container);
      const requirements = envRequirements(name as ServiceName);
      const fromCompose = Object.keys(compose.services[name].environment ?? {}).filter((variable) => reads(requirements, variable));
      for (const variable of new Set([...fromCompose, ...requirements.loopbackDefaults])) {
        expect({ service: name, variable, set: isSet(env, variable) }).toEqual({ service: name, variable, set: true });
      }
      const ports = name === 'gpu-server' ? (['gpuHttp', 'gpuGrpc', 'gpuMetrics'] as PortName[]) : [name as PortName];
      for (const port of ports) expect({ service: name, port: Number(env[PORT_VARIABLES[port]]) }).toEqual({ service: name, port: DEFAULT_PORTS[port] });
      expect(containerPort(container, 'http').containerPort).toBe(DEFAULT_PORTS[name === 'gpu-server' ? 'gpuHttp' : (name as PortName)]);
    }
  });

  it('routes the gateway to every subgraph of supergraph.yaml through its Service, and inference to the GPU tier', () => {
    const env = containerEnv(objects, find(objects, 'Deployment', 'gateway').spec.template.spec.containers[0]);
    for (const subgraph of readSupergraphConfig(path.join(ROOT, 'supergraph.yaml'))) {
      const port = Number(new URL(subgraph.url).port);
      expect(env[`SLUICE_SUBGRAPH_${subgraph.name.toUpperCase()}_URL`]).toBe(`http://${subgraph.name}:${port}/graphql`);
      expect(find(objects, 'Service', subgraph.name).spec.ports.map((p: { port: number }) => p.port)).toContain(port);
    }
    const inference = containerEnv(objects, find(objects, 'Deployment', 'inference').spec.template.spec.containers[0]);
    if (gpuTier === 'gpu-server') {
      expect(inference.INFERENCE_GPU_ENDPOINT).toBe(`gpu-server:${DEFAULT_PORTS.gpuGrpc}`);
      expect(find(objects, 'Service', 'gpu-server').spec.ports.map((p: { port: number }) => p.port)).toContain(DEFAULT_PORTS.gpuGrpc);
    } else {
      // The headless Service's DNS name in this namespace, resolved by the router to one address per pod.
      expect(inference.INFERENCE_GPU_ENDPOINTS).toBe(`dns:///triton-headless.sluice.svc.cluster.local:${DEFAULT_PORTS.gpuGrpc}`);
      expect(parseEndpointList(inference.INFERENCE_GPU_ENDPOINTS)).toEqual([inference.INFERENCE_GPU_ENDPOINTS]);
      expect(find(objects, 'Service', 'triton-headless').spec.clusterIP).toBe('None');
      expect(inference.REDIS_CLUSTER_NODES).toMatch(/^[\w.-]+:\d+(,[\w.-]+:\d+)+$/);
    }
  });

  it('gives each service only its own secrets, and its own Redis user', () => {
    const holds = (name: string) => {
      const pod = find(objects, 'Deployment', name).spec.template.spec;
      const secrets = pod.volumes.filter((v: Manifest) => v.secret).map((v: Manifest) => v.secret.secretName);
      return secrets.flatMap((secret: string) => Object.keys(find(objects, 'Secret', secret).data)).sort();
    };
    expect(holds('gateway')).toEqual(['identity-private.pem', 'metrics-token', 'redis-password']);
    expect(holds('auth')).toEqual(['identity-public.pem', 'redis-password', 'session-sealing-key']);
    expect(holds('billing')).toEqual(['identity-public.pem', 'redis-password']);
    expect(holds('knowledge')).toEqual(['identity-public.pem', 'redis-password']);
    expect(holds('inference')).toEqual(['gpu-key', 'identity-public.pem', 'metrics-token', 'redis-password']);
    expect(holds(gpuTier)).toEqual(gpuTier === 'gpu-server' ? ['gpu-restrictions', 'metrics-token'] : ['gpu-restrictions']);
    for (const user of REDIS_SERVICE_USERS) {
      const env = containerEnv(objects, find(objects, 'Deployment', user).spec.template.spec.containers[0]);
      expect(env.REDIS_USERNAME).toBe(user);
      const secret = find(objects, 'Secret', `${user}-secrets`);
      expect(Buffer.from(secret.data['redis-password'], 'base64').toString()).toBe(readFileSync(path.join(keys, `redis-${user}-password`), 'utf8'));
    }
  });

  it('lets traffic flow exactly: outside → gateway → each subgraph, knowledge → inference → billing and the GPU tier, services → Redis', () => {
    const flows = new Set<string>();
    for (const policy of byKind(objects, 'NetworkPolicy')) {
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      const targets = workloads.filter((w) => matches(policy.spec.podSelector.matchLabels, w.spec.template.metadata.labels));
      for (const rule of policy.spec.ingress ?? []) {
        const sources = rule.from
          ? rule.from.flatMap((peer: Manifest) => {
              expect(peer.namespaceSelector ?? peer.ipBlock).toBeUndefined();
              return workloads.filter((w) => matches(peer.podSelector.matchLabels, w.spec.template.metadata.labels)).map(component);
            })
          : ['outside'];
        for (const target of targets) {
          // Every port a rule opens is one the target's pods listen on.
          for (const { port } of rule.ports ?? [])
            expect({ target: component(target), port, found: target.spec.template.spec.containers.some((c: Manifest) => containerPort(c, port)) }).toEqual({
              target: component(target),
              port,
              found: true,
            });
          for (const source of sources) flows.add(`${source} → ${component(target)}`);
        }
      }
    }
    // Default deny: a pod no policy allows anything to is closed.
    expect(find(objects, 'NetworkPolicy', 'default-deny-ingress').spec).toEqual({ podSelector: {}, policyTypes: ['Ingress'] });
    const expected = [
      'outside → gateway',
      'gateway → auth',
      'gateway → billing',
      'gateway → knowledge',
      'gateway → inference',
      'knowledge → inference',
      'inference → billing',
      `inference → ${gpuTier}`,
      ...(redis ? SERVICES.map((service) => `${service} → redis`) : []),
    ];
    expect([...flows].sort()).toEqual(expected.sort());
  });

  it('runs Triton on GPU nodes with the model repository of the Sluice image, behind the same restricted key', () => {
    if (gpuTier !== 'triton') return;
    const pod = find(objects, 'Deployment', 'triton').spec.template.spec;
    const [init] = pod.initContainers;
    const [triton] = pod.containers;
    expect(init.image).toBe('registry.example.com/sluice:0.1.0');
    expect(init.command.join(' ')).toContain("cp -R gpu-server/model_repository/. /models/ && sed -i 's/kind: KIND_CPU/kind: KIND_GPU/' /models/*/config.pbtxt");
    // …which puts every instance group of the repository on the GPU.
    const repository = path.join(ROOT, 'gpu-server', 'model_repository');
    for (const model of readdirSync(repository)) {
      const kinds = [...readFileSync(path.join(repository, model, 'config.pbtxt'), 'utf8').matchAll(/^\s*kind: (\w+)/gm)].map(([, kind]) => kind);
      expect({ model, kinds }).toEqual({ model, kinds: ['KIND_CPU'] });
    }
    // The image deploy/triton/Dockerfile builds, tagged with its Triton version.
    const [, tritonVersion] = readFileSync(path.join(ROOT, 'deploy', 'triton', 'Dockerfile'), 'utf8').match(/^FROM nvcr\.io\/nvidia\/tritonserver:([\d.]+)-py3$/m) ?? [];
    expect(triton.image).toBe(`registry.example.com/sluice-triton:${tritonVersion}-0.1.0`);
    expect(triton.resources.limits['nvidia.com/gpu']).toBe(1);
    expect(pod.tolerations).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'nvidia.com/gpu' })]));
    expect(triton.command.join(' ')).toContain(
      '--model-repository=/models --model-control-mode=none --grpc-restricted-protocol="$(cat /run/secrets/sluice/gpu-restrictions)" --http-restricted-api="$(cat /run/secrets/sluice/gpu-restrictions)"',
    );
    expect(triton.volumeMounts.map((m: { name: string }) => m.name)).toEqual(expect.arrayContaining(['models', 'dshm']));
  });
});

describe('deploy/kubernetes secrets', () => {
  it('are the files npm run keys writes, and none of them is committed', () => {
    for (const overlay of Object.keys(OVERLAYS)) render(overlay);
    const written = new Set(readdirSync(keys));
    for (const file of secretFilesRead) expect({ file, written: written.has(file) }).toEqual({ file, written: true });
    for (const overlay of Object.keys(OVERLAYS)) {
      const ignore = readFileSync(path.join(KUBERNETES, 'overlays', overlay, 'secrets', '.gitignore'), 'utf8').split('\n');
      expect(ignore).toEqual(expect.arrayContaining(['*', '!.gitignore']));
    }
  });
});
