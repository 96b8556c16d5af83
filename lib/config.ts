import { readFileSync } from 'node:fs';

/**
 * Environment reading with errors that say which variable was wrong and what
 * was expected, so a misconfigured service refuses to start instead of
 * running with a surprise default.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Where variables are read from: the process environment, or a given set of them (tests, a config built for another process). */
export type EnvSource = Readonly<Record<string, string | undefined>>;

/**
 * Typed reads of one set of variables. An empty value counts as unset, so
 * `NAME=` in an env file falls back to the default rather than failing.
 */
export class Env {
  /** Without a source, reads `process.env` as it is at each read. */
  constructor(private readonly source?: EnvSource) {}

  string(name: string, fallback: string): string;
  string(name: string): string | undefined;
  string(name: string, fallback?: string): string | undefined {
    const value = (this.source ?? process.env)[name];
    return value === undefined || value === '' ? fallback : value;
  }

  int(name: string, fallback: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigError(`${name} expects an integer between ${min} and ${max}, but got ${JSON.stringify(raw)}`);
    }
    return value;
  }

  number(name: string, fallback: number, { min = -Number.MAX_VALUE, max = Number.MAX_VALUE } = {}): number {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < min || value > max) {
      throw new ConfigError(`${name} expects a number between ${min} and ${max}, but got ${JSON.stringify(raw)}`);
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.string(name);
    if (raw === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${name} expects true or false, but got ${JSON.stringify(raw)}`);
  }
}

const processEnv = new Env();

export function envString(name: string, fallback: string): string;
export function envString(name: string): string | undefined;
export function envString(name: string, fallback?: string): string | undefined {
  return processEnv.string(name, fallback as string);
}

export function envInt(name: string, fallback: number, limits: { min?: number; max?: number } = {}): number {
  return processEnv.int(name, fallback, limits);
}

export function envNumber(name: string, fallback: number, limits: { min?: number; max?: number } = {}): number {
  return processEnv.number(name, fallback, limits);
}

export function envBool(name: string, fallback: boolean): boolean {
  return processEnv.bool(name, fallback);
}

/** Every port the stack listens on, by name. */
export type PortName = 'gateway' | 'auth' | 'billing' | 'knowledge' | 'inference' | 'gpuHttp' | 'gpuGrpc' | 'gpuMetrics';

/** The default port of each service. */
export const DEFAULT_PORTS: Readonly<Record<PortName, number>> = {
  gateway: 4000,
  auth: 4001,
  billing: 4002,
  knowledge: 4003,
  inference: 4004,
  gpuHttp: 8000,
  gpuGrpc: 8001,
  gpuMetrics: 8002,
};

/** The variable that overrides each port: the one table the services, the launcher and the docs share. */
export const PORT_VARIABLES: Readonly<Record<PortName, string>> = {
  gateway: 'GATEWAY_PORT',
  auth: 'AUTH_PORT',
  billing: 'BILLING_PORT',
  knowledge: 'KNOWLEDGE_PORT',
  inference: 'INFERENCE_PORT',
  gpuHttp: 'GPU_SERVER_HTTP_PORT',
  gpuGrpc: 'GPU_SERVER_GRPC_PORT',
  gpuMetrics: 'GPU_SERVER_METRICS_PORT',
};

/** A port from its variable, else its default. */
export function envPort(name: PortName): number {
  return envInt(PORT_VARIABLES[name], DEFAULT_PORTS[name], { max: 65535 });
}

/**
 * A secret from `NAME`, or from the file named by `NAME_FILE` (how Docker and
 * Kubernetes mount secrets). Escaped `\\n` sequences become newlines so a PEM
 * fits in one environment line. Secrets are never logged.
 */
export function envSecret(name: string): string | undefined {
  return envSecretFrom(process.env, name);
}

/** envSecret from a given set of variables. */
export function envSecretFrom(source: EnvSource, name: string): string | undefined {
  const inline = source[name];
  if (inline) return inline.replace(/\\n/g, '\n');
  const file = source[`${name}_FILE`];
  return file ? readFileSync(file, 'utf8') : undefined;
}
