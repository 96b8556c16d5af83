/**
 * The gpu-server's metrics, computed at scrape time from the core's
 * statistics, so the numbers always agree with ModelStatistics:
 *
 * - Triton's per-model families, with Triton's names, HELP texts and the
 *   labels `model` and `version`. Durations are cumulative microseconds, as
 *   Triton's `nv_inference_*_duration_us` counters are (each successful
 *   request adds its duration; failed ones count in the failure counter only).
 * - Per-instance families of our own (`sluice_instance_*`), labelled by
 *   model, version, instance name, kind and device, since each instance is an
 *   execution context bound to one device.
 * - The prefix cache of the causal-lm backend (`sluice_prefix_cache_*`), per
 *   model and version like Triton's own response-cache counters
 *   (`nv_cache_num_hits_per_model`): the instances' caches summed. Models
 *   without a prefix cache report 0.
 */
import type { CoreInstanceStatistics, InferenceCore } from '../core/inference-core';
import { PrefixCacheCounter } from '../core/prefix-cache-counters';
import type { ModelVersionStatistics } from '../core/statistics';
import type { MetricFamily, MetricType, Sample } from './prometheus';

const us = (ns: number) => Math.floor(ns / 1000);

/** Triton's families computed from one ModelStatistics entry each. */
const MODEL_FAMILIES: ReadonlyArray<{ name: string; help: string; value(s: ModelVersionStatistics): number }> = [
  { name: 'nv_inference_request_success', help: 'Number of successful inference requests, all batch sizes', value: (s) => s.inference_stats.success.count },
  { name: 'nv_inference_request_failure', help: 'Number of failed inference requests, all batch sizes', value: (s) => s.inference_stats.fail.count },
  { name: 'nv_inference_count', help: 'Number of inferences performed (does not include cached requests)', value: (s) => s.inference_count },
  { name: 'nv_inference_exec_count', help: 'Number of model executions performed (does not include cached requests)', value: (s) => s.execution_count },
  { name: 'nv_inference_request_duration_us', help: 'Cumulative inference request duration in microseconds (includes cached requests)', value: (s) => us(s.inference_stats.success.ns) },
  { name: 'nv_inference_queue_duration_us', help: 'Cumulative inference queuing duration in microseconds (includes cached requests)', value: (s) => us(s.inference_stats.queue.ns) },
  {
    name: 'nv_inference_compute_input_duration_us',
    help: 'Cumulative compute input duration in microseconds (does not include cached requests)',
    value: (s) => us(s.inference_stats.compute_input.ns),
  },
  {
    name: 'nv_inference_compute_infer_duration_us',
    help: 'Cumulative compute inference duration in microseconds (does not include cached requests)',
    value: (s) => us(s.inference_stats.compute_infer.ns),
  },
  {
    name: 'nv_inference_compute_output_duration_us',
    help: 'Cumulative inference compute output duration in microseconds (does not include cached requests)',
    value: (s) => us(s.inference_stats.compute_output.ns),
  },
];

const INSTANCE_FAMILIES: ReadonlyArray<{ name: string; help: string; type: MetricType; value(s: CoreInstanceStatistics): number }> = [
  { name: 'sluice_instance_execution_count', help: 'Number of executions by this model instance: batches run, or for a decoupled model requests served', type: 'counter', value: (s) => s.executions },
  {
    name: 'sluice_instance_busy_duration_us',
    help: 'Cumulative time this model instance spent executing (decoupled: with at least one live sequence), in microseconds',
    type: 'counter',
    value: (s) => us(s.busyNs),
  },
  { name: 'sluice_instance_active_sequences', help: 'Instantaneous number of generation sequences live in this model instance (continuous batching)', type: 'gauge', value: (s) => s.activeSequences },
];

const PREFIX_CACHE_FAMILIES: ReadonlyArray<{ name: string; help: string; type: MetricType; counter: PrefixCacheCounter }> = [
  {
    name: 'sluice_prefix_cache_hit_tokens',
    help: 'Number of prompt tokens whose keys and values came from the prefix cache instead of being computed',
    type: 'counter',
    counter: PrefixCacheCounter.HitTokens,
  },
  { name: 'sluice_prefix_cache_miss_tokens', help: 'Number of prompt tokens computed by prefill (not in the prefix cache)', type: 'counter', counter: PrefixCacheCounter.MissTokens },
  {
    name: 'sluice_prefix_cache_evicted_blocks',
    help: 'Number of prefix-cache blocks evicted (least recently used) to stay within prefix_cache_bytes',
    type: 'counter',
    counter: PrefixCacheCounter.EvictedBlocks,
  },
  { name: 'sluice_prefix_cache_bytes', help: 'Instantaneous bytes of keys and values held in the prefix cache', type: 'gauge', counter: PrefixCacheCounter.Bytes },
];

export function collectInferenceMetrics(core: InferenceCore): MetricFamily[] {
  const models = core.statistics();
  const modelLabels = (s: { name: string; version: string }) => ({ model: s.name, version: s.version });
  const families: MetricFamily[] = MODEL_FAMILIES.map((f) => ({
    name: f.name,
    help: f.help,
    type: 'counter',
    samples: models.map((s): Sample => ({ labels: modelLabels(s), value: f.value(s) })),
  }));
  families.push({
    name: 'nv_inference_pending_request_count',
    help: 'Instantaneous number of pending requests awaiting execution per-model.',
    type: 'gauge',
    samples: core.pendingRequests().map((p) => ({ labels: modelLabels(p), value: p.pending })),
  });
  const instances = core.instanceStatistics();
  for (const f of INSTANCE_FAMILIES) {
    families.push({
      name: f.name,
      help: f.help,
      type: f.type,
      samples: instances.map((s) => ({
        labels: { ...modelLabels(s), instance: s.instance, kind: s.kind, device: s.kind === 'KIND_GPU' ? `gpu${s.device}` : 'cpu' },
        value: f.value(s),
      })),
    });
  }
  const perModel = new Map<string, { name: string; version: string; instances: CoreInstanceStatistics[] }>();
  for (const s of instances) {
    const key = `${s.name}\0${s.version}`;
    if (!perModel.has(key)) perModel.set(key, { name: s.name, version: s.version, instances: [] });
    perModel.get(key)!.instances.push(s);
  }
  for (const f of PREFIX_CACHE_FAMILIES) {
    families.push({
      name: f.name,
      help: f.help,
      type: f.type,
      samples: [...perModel.values()].map((m) => ({ labels: modelLabels(m), value: m.instances.reduce((sum, s) => sum + s.prefixCache[f.counter], 0) })),
    });
  }
  return families;
}
