/**
 * The gpu-server's access options, from Triton's own flags or the matching
 * variables (a flag wins over its variable):
 *
 *   --model-control-mode=none|explicit|poll       GPU_SERVER_MODEL_CONTROL_MODE (default none)
 *   --repository-poll-secs=<n>                    GPU_SERVER_REPOSITORY_POLL_SECS (default 15)
 *   --grpc-restricted-protocol=<cats>:<k>=<v>     GPU_SERVER_GRPC_RESTRICTED_PROTOCOL (groups separated by ';'; or _FILE)
 *   --http-restricted-api=<cats>:<k>=<v>          GPU_SERVER_HTTP_RESTRICTED_API (groups separated by ';'; or _FILE)
 *                                                 GPU_SERVER_METRICS_TOKEN (or _FILE): /metrics needs Authorization: Bearer <token>
 *
 * The restriction flags may repeat, one group each, as Triton's do. A
 * restricted value is a secret: prefer the variables' `_FILE` form to a flag,
 * which other users of the machine can read in the process list.
 */
import { ConfigError, Env, envSecretFrom, type EnvSource } from '../../lib/config';
import { parseModelControlMode, type ModelControlMode } from '../repository/model-control';
import { parseRestrictions, type Restrictions } from './restrictions';

export interface AccessOptions {
  modelControlMode: ModelControlMode;
  repositoryPollMs: number;
  grpcRestrictions: Restrictions;
  httpRestrictions: Restrictions;
  metricsToken: string | undefined;
}

/** Each Triton flag and the variable it overrides. */
const FLAGS: Readonly<Record<string, string>> = {
  'model-control-mode': 'GPU_SERVER_MODEL_CONTROL_MODE',
  'repository-poll-secs': 'GPU_SERVER_REPOSITORY_POLL_SECS',
  'grpc-restricted-protocol': 'GPU_SERVER_GRPC_RESTRICTED_PROTOCOL',
  'http-restricted-api': 'GPU_SERVER_HTTP_RESTRICTED_API',
};

export function accessOptions(argv: readonly string[], source: EnvSource = process.env): AccessOptions {
  const given: Record<string, string> = {};
  for (const arg of argv) {
    const match = /^--([a-z-]+)=(.*)$/s.exec(arg);
    const variable = match && FLAGS[match[1]];
    if (!variable)
      throw new ConfigError(
        `unknown argument ${JSON.stringify(arg)}; the gpu-server accepts ${Object.keys(FLAGS)
          .map((f) => `--${f}=…`)
          .join(', ')}`,
      );
    // A repeated restriction flag adds a group; any other repeated flag is overridden by its last.
    given[variable] = variable.endsWith('_RESTRICTED_PROTOCOL') || variable.endsWith('_RESTRICTED_API') ? [given[variable], match[2]].filter(Boolean).join(';') : match[2];
  }
  const merged = { ...source, ...given };
  const env = new Env(merged);
  const groups = (variable: string) =>
    envSecretFrom(merged, variable)
      ?.split(';')
      .map((g) => g.trim())
      .filter(Boolean) ?? [];
  return {
    modelControlMode: parseModelControlMode(env.string('GPU_SERVER_MODEL_CONTROL_MODE', 'none'), '--model-control-mode (GPU_SERVER_MODEL_CONTROL_MODE)'),
    repositoryPollMs: 1000 * env.int('GPU_SERVER_REPOSITORY_POLL_SECS', 15, { min: 1 }),
    grpcRestrictions: parseRestrictions(groups('GPU_SERVER_GRPC_RESTRICTED_PROTOCOL'), 'grpc', '--grpc-restricted-protocol (GPU_SERVER_GRPC_RESTRICTED_PROTOCOL)'),
    httpRestrictions: parseRestrictions(groups('GPU_SERVER_HTTP_RESTRICTED_API'), 'http', '--http-restricted-api (GPU_SERVER_HTTP_RESTRICTED_API)'),
    metricsToken: envSecretFrom(merged, 'GPU_SERVER_METRICS_TOKEN')?.trim(),
  };
}
