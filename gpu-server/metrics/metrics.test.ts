/**
 * The metrics port over real HTTP: a gpu-server on free ports serving
 * sluice-embed twice — under its own name and under a name with a double
 * quote and a backslash, to see label escaping end to end — and sluice-chat
 * (for its prefix cache), scraped before and after inference.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../../lib/log';
import { startGpuServer, type GpuServer } from '../server';

const MODEL = 'sluice-embed';
const ODD = 'embed "quoted" \\ name';
const CHAT = 'sluice-chat';
const SOURCE = path.join(__dirname, '..', 'model_repository', MODEL);

let repository: string;
let server: GpuServer;

interface Scrape {
  text: string;
  /** Sample value by metric name and label set. */
  value(name: string, labels: Record<string, string>): number | undefined;
  types: Map<string, string>;
  helps: Map<string, string>;
}

/** A small parser of the text format, unescaping label values, so the test reads what Prometheus would. */
function parse(text: string): Scrape {
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      (meta[1] === 'TYPE' ? types : helps).set(meta[2], meta[3]);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (sample[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]] = m[2].replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: sample[1], labels, value: Number(sample[3]) });
  }
  const same = (a: Record<string, string>, b: Record<string, string>) => Object.keys(b).every((k) => a[k] === b[k]);
  return { text, types, helps, value: (name, labels) => samples.find((s) => s.name === name && same(s.labels, labels))?.value };
}

async function scrape(): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parse(await response.text());
}

async function infer(model: string, texts: string[]): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/${encodeURIComponent(model)}/infer`, {
    method: 'POST',
    body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [texts.length, 1], data: texts }] }),
  });
  await response.text();
  return response.status;
}

beforeAll(async () => {
  repository = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-metrics-'));
  for (const name of [MODEL, ODD]) {
    fs.mkdirSync(path.join(repository, name, '1'), { recursive: true });
    const config = fs.readFileSync(path.join(SOURCE, 'config.pbtxt'), 'utf8').replace(`name: "${MODEL}"`, `name: ${JSON.stringify(name)}`);
    fs.writeFileSync(path.join(repository, name, 'config.pbtxt'), config);
    fs.copyFileSync(path.join(SOURCE, '1', 'model.onnx'), path.join(repository, name, '1', 'model.onnx'));
  }
  fs.cpSync(path.join(SOURCE, '..', CHAT), path.join(repository, CHAT), { recursive: true });
  server = await startGpuServer({ repository, host: '127.0.0.1', grpcPort: 0, httpPort: 0, metricsPort: 0, logger: createLogger({ test: 'metrics' }) });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(repository, { recursive: true, force: true });
});

const TRITON_COUNTERS = [
  'nv_inference_request_success',
  'nv_inference_request_failure',
  'nv_inference_count',
  'nv_inference_exec_count',
  'nv_inference_request_duration_us',
  'nv_inference_queue_duration_us',
  'nv_inference_compute_infer_duration_us',
];

describe('GET /metrics', () => {
  it("declares Triton's families with HELP and TYPE, labelled by model and version", async () => {
    const s = await scrape();
    for (const name of TRITON_COUNTERS) {
      expect([name, s.types.get(name)]).toEqual([name, 'counter']);
      expect(s.helps.get(name)).toBeTruthy();
      expect(s.value(name, { model: MODEL, version: '1' })).toBe(0);
    }
    expect(s.types.get('nv_inference_pending_request_count')).toBe('gauge');
    expect(s.value('nv_inference_pending_request_count', { model: MODEL, version: '1' })).toBe(0);
    expect(s.helps.get('nv_inference_request_success')).toBe('Number of successful inference requests, all batch sizes');
  });

  it('counts requests, samples, executions and durations after inference', async () => {
    const before = await scrape();
    const labels = { model: MODEL, version: '1' };
    expect(await infer(MODEL, ['one', 'two', 'three'])).toBe(200);
    expect(await infer(MODEL, ['four'])).toBe(200);
    const after = await scrape();
    const delta = (name: string) => after.value(name, labels)! - before.value(name, labels)!;
    expect(delta('nv_inference_request_success')).toBe(2);
    expect(delta('nv_inference_count')).toBe(4);
    expect(delta('nv_inference_exec_count')).toBe(2);
    expect(delta('nv_inference_request_failure')).toBe(0);
    expect(delta('nv_inference_request_duration_us')).toBeGreaterThan(0);
    expect(delta('nv_inference_compute_infer_duration_us')).toBeGreaterThan(0);
    expect(delta('nv_inference_request_duration_us')).toBeGreaterThanOrEqual(delta('nv_inference_compute_infer_duration_us'));
    // Agrees with the statistics endpoint, which reads the same counters.
    const stats = (await (await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/${MODEL}/stats`)).json()) as { model_stats: Array<{ inference_count: number }> };
    expect(after.value('nv_inference_count', labels)).toBe(stats.model_stats[0].inference_count);
  });

  it('reports each instance with its device, and its executions growing', async () => {
    const labels = { model: MODEL, version: '1', instance: 'sluice-embed_0_0', kind: 'KIND_CPU', device: 'cpu' };
    const before = await scrape();
    expect(before.types.get('sluice_instance_execution_count')).toBe('counter');
    expect(before.types.get('sluice_instance_active_sequences')).toBe('gauge');
    expect(await infer(MODEL, ['five'])).toBe(200);
    const after = await scrape();
    expect(after.value('sluice_instance_execution_count', labels)! - before.value('sluice_instance_execution_count', labels)!).toBe(1);
    expect(after.value('sluice_instance_busy_duration_us', labels)!).toBeGreaterThan(0);
    expect(after.value('sluice_instance_active_sequences', labels)).toBe(0);
  });

  it('counts the prefix cache of a generation model: hit and missed prompt tokens, bytes held', async () => {
    const labels = { model: CHAT, version: '1' };
    const before = await scrape();
    for (const name of ['sluice_prefix_cache_hit_tokens', 'sluice_prefix_cache_miss_tokens', 'sluice_prefix_cache_evicted_blocks']) expect(before.types.get(name)).toBe('counter');
    expect(before.types.get('sluice_prefix_cache_bytes')).toBe('gauge');
    expect(before.value('sluice_prefix_cache_hit_tokens', labels)).toBe(0);
    expect(before.value('sluice_prefix_cache_bytes', { model: MODEL, version: '1' })).toBe(0);
    const generate = async () => {
      const response = await fetch(`http://127.0.0.1:${server.httpPort}/v2/models/${CHAT}/generate`, {
        method: 'POST',
        body: JSON.stringify({ text_input: 'A long shared system prompt, sent twice. '.repeat(10), return_num_input_tokens: true, parameters: { max_tokens: 2, temperature: 0 } }),
      });
      expect(response.status).toBe(200);
      return (await response.json()) as { num_input_tokens: number; sluice_cached_prompt_tokens: number };
    };
    const cold = await generate();
    const warm = await generate();
    expect(cold.sluice_cached_prompt_tokens).toBe(0);
    expect(warm.sluice_cached_prompt_tokens).toBe(Math.floor((warm.num_input_tokens - 1) / 16) * 16);
    const after = await scrape();
    expect(after.value('sluice_prefix_cache_hit_tokens', labels)).toBe(warm.sluice_cached_prompt_tokens);
    expect(after.value('sluice_prefix_cache_miss_tokens', labels)).toBe(2 * warm.num_input_tokens - warm.sluice_cached_prompt_tokens);
    expect(after.value('sluice_prefix_cache_bytes', labels)).toBe(Math.floor(warm.num_input_tokens / 16) * 16 * 2048);
    expect(after.value('sluice_prefix_cache_evicted_blocks', labels)).toBe(0);
  });

  it('escapes label values: a model name with a quote and a backslash reads back intact', async () => {
    expect(await infer(ODD, ['escaped'])).toBe(200);
    const s = await scrape();
    expect(s.text).toContain('nv_inference_count{model="embed \\"quoted\\" \\\\ name",version="1"} 1');
    expect(s.value('nv_inference_count', { model: ODD, version: '1' })).toBe(1);
  });

  it('answers other paths with 404 and other methods with 405', async () => {
    const base = `http://127.0.0.1:${server.metricsPort}`;
    const missing = await fetch(`${base}/v2/health/live`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'Not Found: no route for /v2/health/live; the metrics server answers GET /metrics' });
    const wrong = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(wrong.status).toBe(405);
    expect(await wrong.json()).toEqual({ error: 'Method Not Allowed: POST /metrics expects GET' });
  });
});
