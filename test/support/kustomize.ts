import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

/**
 * Renders a Kustomize directory as `kubectl kustomize` does, for the features
 * deploy/kubernetes uses: resources (files and directories), generators
 * (configMapGenerator and secretGenerator with literals and files, behavior
 * create/merge/replace, without name hashes), strategic-merge patches,
 * replicas, images, namespace and labels. No kubectl runs here and no
 * maintained npm package renders Kustomize, so this stays small and refuses
 * every field it does not implement rather than ignoring it.
 */
/** Any part of a manifest: free-form YAML here, whose shape the Kubernetes schemas check. */
// biome-ignore lint/suspicious/noExplicitAny: manifests are read as data; kubernetes-models validates their shape
export type Manifest = Record<string, any>;

export interface K8sObject extends Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
}

export interface RenderOptions {
  /** Reads a generator's file (the operator's secrets are not in git): absolute path → contents. @default readFileSync */
  readFile?: (file: string) => string;
}

interface Generator {
  name: string;
  behavior?: 'create' | 'merge' | 'replace';
  literals?: string[];
  files?: string[];
}

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  namespace?: string;
  resources?: string[];
  labels?: { pairs: Record<string, string>; includeTemplates?: boolean; includeSelectors?: boolean }[];
  configMapGenerator?: Generator[];
  secretGenerator?: Generator[];
  generatorOptions?: { disableNameSuffixHash?: boolean };
  patches?: { path?: string; patch?: string; target?: { kind?: string; name?: string } }[];
  replicas?: { name: string; count: number }[];
  images?: { name: string; newName?: string; newTag?: string }[];
}

const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'labels', 'configMapGenerator', 'secretGenerator', 'generatorOptions', 'patches', 'replicas', 'images']);

export function renderKustomization(dir: string, options: RenderOptions = {}): K8sObject[] {
  const readFile = options.readFile ?? ((file: string) => readFileSync(file, 'utf8'));
  const file = path.join(dir, 'kustomization.yaml');
  const k = YAML.parse(readFileSync(file, 'utf8')) as Kustomization;
  const unsupported = Object.keys(k).filter((key) => !SUPPORTED.has(key));
  if (unsupported.length > 0) throw new Error(`${file}: the test renderer does not implement ${unsupported.join(', ')}; expected only ${[...SUPPORTED].join(', ')}`);

  const objects: K8sObject[] = [];
  for (const resource of k.resources ?? []) {
    const target = path.resolve(dir, resource);
    if (statSync(target).isDirectory()) objects.push(...renderKustomization(target, options));
    else objects.push(...YAML.parseAllDocuments(readFileSync(target, 'utf8')).map((doc) => doc.toJS() as K8sObject));
  }

  if ((k.configMapGenerator || k.secretGenerator) && !k.generatorOptions?.disableNameSuffixHash) {
    throw new Error(`${file}: generators need generatorOptions.disableNameSuffixHash: true here (the test renderer does not compute name hashes)`);
  }
  const generate = (kind: 'ConfigMap' | 'Secret', generator: Generator) => {
    const data: Record<string, string> = {};
    for (const literal of generator.literals ?? []) {
      const at = literal.indexOf('=');
      data[literal.slice(0, at)] = literal.slice(at + 1);
    }
    for (const entry of generator.files ?? []) {
      const [key, source] = entry.includes('=') ? entry.split('=', 2) : [path.basename(entry), entry];
      data[key] = readFile(path.resolve(dir, source));
    }
    const existing = objects.find((o) => o.kind === kind && o.metadata.name === generator.name);
    const behavior = generator.behavior ?? 'create';
    if (behavior === 'create' && existing) throw new Error(`${file}: ${kind} ${generator.name} is generated twice; expected behavior merge or replace`);
    if (behavior !== 'create' && !existing) throw new Error(`${file}: ${kind} ${generator.name} has behavior ${behavior} but no base generates it`);
    const encoded = kind === 'Secret' ? Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')])) : data;
    if (existing) {
      existing.data = behavior === 'merge' ? { ...existing.data, ...encoded } : encoded;
      return;
    }
    objects.push({ apiVersion: 'v1', kind, metadata: { name: generator.name }, ...(kind === 'Secret' ? { type: 'Opaque' } : {}), data: encoded });
  };
  for (const generator of k.configMapGenerator ?? []) generate('ConfigMap', generator);
  for (const generator of k.secretGenerator ?? []) generate('Secret', generator);

  for (const patch of k.patches ?? []) {
    const body = YAML.parse(patch.patch ?? readFileSync(path.resolve(dir, patch.path ?? ''), 'utf8')) as K8sObject;
    const kind = patch.target?.kind ?? body.kind;
    const name = patch.target?.name ?? body.metadata.name;
    const matched = objects.filter((o) => o.kind === kind && o.metadata.name === name);
    if (matched.length !== 1) throw new Error(`${file}: a patch targets ${kind} ${name}, expected one such object but found ${matched.length}`);
    Object.assign(matched[0], strategicMerge(matched[0], body));
  }

  for (const { name, count } of k.replicas ?? []) {
    const matched = objects.filter((o) => ['Deployment', 'StatefulSet', 'ReplicaSet'].includes(o.kind) && o.metadata.name === name);
    if (matched.length === 0) throw new Error(`${file}: replicas names ${name}, but no workload has that name`);
    for (const o of matched) o.spec.replicas = count;
  }

  for (const image of k.images ?? []) {
    for (const container of objects.flatMap(podContainers)) {
      const [name, tag] = splitImage(container.image);
      if (name !== image.name) continue;
      container.image = `${image.newName ?? name}${(image.newTag ?? tag) ? `:${image.newTag ?? tag}` : ''}`;
    }
  }

  for (const o of objects) {
    if (k.namespace) o.metadata.namespace = k.namespace;
    for (const { pairs, includeTemplates, includeSelectors } of k.labels ?? []) {
      if (includeSelectors) throw new Error(`${file}: labels with includeSelectors are not implemented by the test renderer`);
      o.metadata.labels = { ...o.metadata.labels, ...pairs };
      if (includeTemplates && o.spec?.template?.metadata) o.spec.template.metadata.labels = { ...o.spec.template.metadata.labels, ...pairs };
    }
  }
  return objects;
}

/** Every container and init container of a workload's pod template. */
export function podContainers(o: K8sObject): Manifest[] {
  const pod = o.spec?.template?.spec;
  return pod ? [...(pod.initContainers ?? []), ...(pod.containers ?? [])] : [];
}

function splitImage(image: string): [string, string | undefined] {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? [image.slice(0, colon), image.slice(colon + 1)] : [image, undefined];
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Kubernetes' strategic merge as the manifests use it: maps merge key by key
 * (null deletes), lists of named items (containers, env, volumes, ports)
 * merge by name, any other list is replaced.
 */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isObject(base) && isObject(patch)) {
    const merged: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = key in base ? strategicMerge(base[key], value) : value;
    }
    return merged;
  }
  const named = (list: unknown) => Array.isArray(list) && list.every((item) => isObject(item) && typeof item.name === 'string');
  if (named(base) && named(patch)) {
    const merged = [...(base as { name: string }[])];
    for (const item of patch as { name: string }[]) {
      const at = merged.findIndex((m) => m.name === item.name);
      if (at >= 0) merged[at] = strategicMerge(merged[at], item) as { name: string };
      else merged.push(item);
    }
    return merged;
  }
  return patch;
}
