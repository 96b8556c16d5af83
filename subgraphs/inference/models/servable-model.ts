import { codedError, ErrorCode } from '../../../lib/errors';
import { gpuError } from '../gpu-tier/gpu-errors';
import type { ModelCatalog, ModelInfo, ModelKind } from './model-catalog';

/** Where a request names its model, for messages: `embed`'s `model` argument, a completion's `input.model`. */
export interface ModelField {
  /** As the message names it ("embed", "input.model"). */
  label: string;
  /** As `extensions.field` names it. */
  path: string;
}

const KIND_NAMES: Record<ModelKind, string> = { EMBEDDING: 'embedding', TEXT_GENERATION: 'text-generation', OTHER: 'other' };

/**
 * The model a request may use: the one it names, or the first ready one of
 * `kind`. Unknown → MODEL_NOT_FOUND; not ready → MODEL_NOT_READY with
 * `retryAfter` (seconds until the catalog looks again) (checked
 * before the kind: an unloaded model has no config to tell its kind from);
 * another kind → BAD_USER_INPUT naming the field.
 */
export async function servableModel(catalog: ModelCatalog, id: string | null | undefined, kind: ModelKind, field: ModelField): Promise<ModelInfo> {
  const model = await (id ? catalog.get(id) : catalog.defaultOf(kind)).catch((error: unknown) => {
    throw gpuError(error, id ?? undefined);
  });
  if (!model) {
    throw id
      ? codedError(ErrorCode.ModelNotFound, `model ${JSON.stringify(id)} is not served by the GPU tier; query "models" for the ones that are`, { model: id })
      : codedError(ErrorCode.ModelNotReady, `no ${KIND_NAMES[kind]} model is ready on the GPU tier`, {});
  }
  if (!model.ready) {
    throw codedError(ErrorCode.ModelNotReady, `model ${JSON.stringify(model.id)} is ${model.state}${model.reason ? `: ${model.reason}` : ''}; retry in ${catalog.retryAfter} s`, {
      model: model.id,
      retryAfter: catalog.retryAfter,
    });
  }
  if (model.kind !== kind) {
    const article = /^[AEIOU]/.test(kind) ? 'an' : 'a';
    throw codedError(ErrorCode.BadUserInput, `${field.label} expects ${article} ${kind} model, but ${JSON.stringify(model.id)} is ${model.kind}`, { field: field.path });
  }
  return model;
}
