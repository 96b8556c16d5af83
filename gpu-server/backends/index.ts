/**
 * Chooses the backend that serves a model, from its config.pbtxt.
 *
 * Triton picks a backend by `backend:`/`platform:`. Our models declare what
 * Triton should run (e.g. `backend: "python"` with a model.py) and name the
 * built-in Sluice backend that does the same work in the parameter
 * `sluice_backend`, so one repository serves on both servers. Each instance
 * of a model runs its backend in its own worker thread.
 */
import type { RunnerFactory } from '../core/runner';
import { configParameter, type ModelConfig } from '../../protocol/triton/model-config';
import { BUILTIN_BACKENDS } from './registry';
import { inWorker } from './worker-host';

export { BUILTIN_BACKENDS };

/** The runner factory for `config`, or throws saying what is missing. */
export function selectBackend(config: ModelConfig): RunnerFactory {
  const name = configParameter(config, 'sluice_backend');
  if (name === undefined) {
    throw new Error(
      `model '${config.name}' names no Sluice backend: add parameters { key: "sluice_backend" value: { string_value: "<name>" } } with one of: ${Object.keys(BUILTIN_BACKENDS).join(', ')} (backend '${config.backend || config.platform || ''}' is not run natively)`,
    );
  }
  const factory = BUILTIN_BACKENDS[name];
  if (!factory) throw new Error(`parameter 'sluice_backend' expects one of: ${Object.keys(BUILTIN_BACKENDS).join(', ')}, but got '${name}'`);
  return inWorker(name);
}
