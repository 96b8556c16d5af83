import type { ModelConfigResponse__Output } from '../../../protocol/triton/messages';
import { instanceCount } from '../../../protocol/triton/model-config';
import type { TritonApi } from '../gpu-tier/triton-client';

export type ModelKind = 'EMBEDDING' | 'TEXT_GENERATION' | 'OTHER';

export interface TensorSpec {
  name: string;
  datatype: string;
  dims: number[];
}

/** A model as the GPU tier describes it. */
export interface ModelInfo {
  id: string;
  version: string;
  /** Triton's model state: READY, UNAVAILABLE, LOADING, UNLOADING. */
  state: string;
  reason: string;
  ready: boolean;
  kind: ModelKind;
  platform: string;
  maxBatchSize: number;
  instances: number;
  decoupled: boolean;
  contextLength: number | null;
  /** The `chat_template` parameter (a Jinja chat template), when the model declares one. */
  chatTemplate: string | null;
  /** The `response_cache` parameter: repeatable completions of this model are cached unless the caller opts out. */
  responseCache: boolean;
  /** The `max_tokens` parameter of an embedding model: the tokens of a text it reads, the rest cut off; null when not declared. */
  maxInputTokens: number | null;
  /** The `tokenizer` parameter of an embedding model: the encoding its text is tokenized with, so the one token ids are in; null when not declared. */
  tokenizer: string | null;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/**
 * What the GPU tier serves, learned from RepositoryIndex and ModelConfig (never
 * from a list of ours), and cached for `ttlMs` so a burst of `models` queries
 * costs one round of RPCs. Concurrent refreshes share one in-flight load.
 *
 * Over a GpuTier of several endpoints the index is the tier's merged one: a
 * model is READY when it is ready on some endpoint that answers, and its
 * config comes from such an endpoint (the same model version is assumed to
 * have the same config everywhere).
 */
export class ModelCatalog {
  private cached: { at: number; models: Map<string, ModelInfo> } | undefined;
  private loading: Promise<Map<string, ModelInfo>> | undefined;

  constructor(
    private readonly triton: TritonApi,
    private readonly ttlMs: number,
  ) {}

  /** Seconds after which a model found not ready may be asked for again: by then the catalog has looked again. */
  get retryAfter(): number {
    return Math.max(1, Math.ceil(this.ttlMs / 1_000));
  }

  async list(): Promise<ModelInfo[]> {
    return [...(await this.models()).values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  async get(id: string): Promise<ModelInfo | undefined> {
    return (await this.models()).get(id);
  }

  /** The first ready model of a kind, for requests that do not name one. */
  async defaultOf(kind: ModelKind): Promise<ModelInfo | undefined> {
    return (await this.list()).find((model) => model.kind === kind && model.ready);
  }

  private async models(): Promise<Map<string, ModelInfo>> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs) return this.cached.models;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async load(): Promise<Map<string, ModelInfo>> {
    const index = await this.triton.repositoryIndex();
    const models = new Map<string, ModelInfo>();
    await Promise.all(
      index.models.map(async (entry) => {
        const ready = entry.state === 'READY';
        // Triton answers ModelConfig only for loaded models; the others are listed with their state and reason.
        const config = ready ? (await this.triton.modelConfig(entry.name)).config : null;
        const existing = models.get(entry.name);
        // RepositoryIndex lists each version; keep the ready one (or the newest).
        if (existing && (existing.ready || !ready) && Number(existing.version) >= Number(entry.version)) return;
        models.set(entry.name, describe(entry.name, entry.version, entry.state, entry.reason, config));
      }),
    );
    this.cached = { at: Date.now(), models };
    return models;
  }
}

function describe(id: string, version: string, state: string, reason: string, config: ModelConfigResponse__Output['config']): ModelInfo {
  const inputs = (config?.input ?? []).map((t) => ({ name: t.name, datatype: t.data_type.replace(/^TYPE_/, ''), dims: t.dims }));
  const outputs = (config?.output ?? []).map((t) => ({ name: t.name, datatype: t.data_type.replace(/^TYPE_/, ''), dims: t.dims }));
  const names = new Set([...inputs, ...outputs].map((t) => t.name));
  const kind: ModelKind = names.has('text') && names.has('embedding') ? 'EMBEDDING' : names.has('text_input') && names.has('text_output') ? 'TEXT_GENERATION' : 'OTHER';
  const contextLength = Number(config?.parameters?.context_length?.string_value);
  return {
    id,
    version,
    state,
    reason,
    ready: state === 'READY',
    kind,
    platform: config?.backend || config?.platform || '',
    maxBatchSize: config?.max_batch_size ?? 0,
    instances: config ? instanceCount(config) : 0,
    decoupled: config?.model_transaction_policy?.decoupled ?? false,
    contextLength: Number.isFinite(contextLength) && contextLength > 0 ? contextLength : null,
    chatTemplate: config?.parameters?.chat_template?.string_value || null,
    responseCache: config?.parameters?.response_cache?.string_value === 'true',
    maxInputTokens: positiveInteger(config?.parameters?.max_tokens?.string_value),
    tokenizer: config?.parameters?.tokenizer?.string_value || null,
    inputs,
    outputs,
  };
}

function positiveInteger(text: string | undefined): number | null {
  const value = Number(text);
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}
