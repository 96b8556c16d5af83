/**
 * Triton's model control modes (`--model-control-mode`):
 * - `none` (Triton's default): the models found at start-up are served;
 *   RepositoryModelLoad/Unload are refused, so nobody who reaches the port
 *   can take a model down or swap it.
 * - `explicit`: load and unload are allowed (for who may call them, see the
 *   `model-repository` restricted category).
 * - `poll`: the repository is re-read every `--repository-poll-secs`; a model
 *   whose files changed is reloaded, a new directory loaded, a removed one
 *   unloaded. Explicit load/unload is refused, as in Triton.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../../lib/config';
import type { Logger } from '../../lib/log';
import { unavailable, type InferenceError } from '../core/errors';
import type { ModelRepository } from './repository';

export const MODEL_CONTROL_MODES = ['none', 'explicit', 'poll'] as const;

export type ModelControlMode = (typeof MODEL_CONTROL_MODES)[number];

export function parseModelControlMode(value: string, option: string): ModelControlMode {
  const mode = value.toLowerCase();
  if (!(MODEL_CONTROL_MODES as readonly string[]).includes(mode)) throw new ConfigError(`${option} expects none, explicit or poll, but got ${JSON.stringify(value)}`);
  return mode as ModelControlMode;
}

/** Triton's refusal of load/unload outside explicit mode (UNAVAILABLE; its message names polling in both modes). */
export function modelControlRefusal(mode: ModelControlMode): InferenceError | undefined {
  return mode === 'explicit' ? undefined : unavailable('explicit model load / unload is not allowed if polling is enabled');
}

/** A model directory's state: every file's path, size and modification time. */
function fingerprint(dir: string): string {
  const parts: string[] = [];
  const walk = (at: string) => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const stat = fs.statSync(full);
        parts.push(`${path.relative(dir, full)}:${stat.size}:${stat.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return parts.join('\n');
}

function modelDirectories(root: string): string[] {
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
    .map((d) => d.name);
}

/**
 * Poll mode: every `intervalMs`, reloads the models whose files changed,
 * loads new directories and unloads removed ones. Returns the stop function.
 * A poll that fails (a file mid-copy) is logged and retried at the next one.
 */
export function pollRepository(repository: ModelRepository, root: string, intervalMs: number, logger: Logger): () => Promise<void> {
  const seen = new Map(modelDirectories(root).map((name) => [name, fingerprint(path.join(root, name))]));
  let polling: Promise<void> = Promise.resolve();
  const poll = async () => {
    const names = new Set(modelDirectories(root));
    for (const name of names) {
      const now = fingerprint(path.join(root, name));
      if (seen.get(name) === now) continue;
      logger.info(seen.has(name) ? 'model files changed: reloading' : 'new model directory: loading', { model: name });
      seen.set(name, now);
      await repository.loadModel(name);
    }
    for (const name of [...seen.keys()]) {
      if (names.has(name)) continue;
      seen.delete(name);
      if (repository.get(name)) {
        logger.info('model directory removed: unloading', { model: name });
        await repository.unloadModel(name);
      }
    }
  };
  const timer = setInterval(() => {
    polling = polling.then(poll).catch((error: unknown) => logger.warn('repository poll failed; retrying at the next poll', { error: error instanceof Error ? error.message : String(error) }));
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await polling;
  };
}
