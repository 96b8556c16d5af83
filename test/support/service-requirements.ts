import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/**
 * What each service reads from its environment, found in its code rather than
 * listed by hand: the files its main.ts reaches through relative imports, and
 * in them every variable name, and every variable whose default is a loopback
 * address (which inside a container or pod is the wrong place, so a
 * deployment must set it).
 */
const ROOT = path.resolve(__dirname, '..', '..');

export const SERVICE_MAINS = {
  gateway: 'gateway/main.ts',
  auth: 'subgraphs/auth/main.ts',
  billing: 'subgraphs/billing/main.ts',
  knowledge: 'subgraphs/knowledge/main.ts',
  inference: 'subgraphs/inference/main.ts',
  'gpu-server': 'gpu-server/main.ts',
} as const;

export type ServiceName = keyof typeof SERVICE_MAINS;

/** The project's own files `main` imports, directly or not. */
export function reachableSources(main: string): string[] {
  const seen = new Set<string>();
  const queue = [path.join(ROOT, main)];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, specifier] of text.matchAll(/(?:from|import\(?|require\()\s*'(\.{1,2}\/[^']+)'/g)) {
      const base = path.resolve(path.dirname(file), specifier);
      const resolved = [`${base}.ts`, path.join(base, 'index.ts'), base].find((candidate) => candidate.endsWith('.ts') && existsSync(candidate));
      if (resolved) queue.push(resolved);
    }
  }
  return [...seen];
}

export interface EnvRequirements {
  /** Every upper-case name quoted in the code: a superset of the variables it reads. */
  mentioned: Set<string>;
  /** Variables whose default is 127.0.0.1 or localhost. */
  loopbackDefaults: Set<string>;
}

export function envRequirements(service: ServiceName): EnvRequirements {
  const mentioned = new Set<string>();
  const loopbackDefaults = new Set<string>();
  const sources = new Map(reachableSources(SERVICE_MAINS[service]).map((file) => [file, readFileSync(file, 'utf8')]));
  const uses = (name: string) => [...sources.values()].reduce((n, source) => n + source.split(new RegExp(`\\b${name}\\b`)).length - 1, 0);
  // Code inside a function runs when the service calls that function (a file is often reached for one
  // constant of it): the function's name appears beyond its declaration in the code the service runs.
  const runs = (text: string, at: number) => {
    const enclosing = [...text.slice(0, at).matchAll(/^(?:export )?(?:async )?function (\w+)/gm)].pop()?.[1];
    return enclosing === undefined || uses(enclosing) > 1;
  };
  for (const text of sources.values()) {
    for (const match of text.matchAll(/'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)'/g)) if (runs(text, match.index)) mentioned.add(match[1]);
    for (const match of text.matchAll(/'([A-Z][A-Z0-9_]+)',\s*[`'][^`']*(?:127\.0\.0\.1|localhost)/g)) if (runs(text, match.index)) loopbackDefaults.add(match[1]);
  }
  return { mentioned, loopbackDefaults };
}

/** Whether code mentioning `mentioned` reads `variable` (a secret's `NAME_FILE` is read through `NAME`). */
export function reads({ mentioned }: EnvRequirements, variable: string): boolean {
  return mentioned.has(variable) || (variable.endsWith('_FILE') && mentioned.has(variable.slice(0, -'_FILE'.length)));
}

/**
 * Variables of which a deployment sets one: the single GPU endpoint or the
 * list (a DNS name in a cluster), one Redis URL or the cluster's nodes.
 */
export const ALTERNATIVES: readonly (readonly string[])[] = [
  ['INFERENCE_GPU_ENDPOINT', 'INFERENCE_GPU_ENDPOINTS', 'INFERENCE_GPU_ENDPOINTS_FILE'],
  ['REDIS_URL', 'REDIS_CLUSTER_NODES'],
];

/** Whether `variable` is set in `env`, directly or through one of its alternatives. */
export function isSet(env: Record<string, string | undefined>, variable: string): boolean {
  const group = ALTERNATIVES.find((names) => names.includes(variable)) ?? [variable];
  return group.some((name) => env[name] !== undefined && env[name] !== '');
}
