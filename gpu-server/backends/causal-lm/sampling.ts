/**
 * The `sampling_parameters` JSON of Triton's vLLM backend, validated, and the
 * token sampler it configures. Like the vLLM backend, numeric values may come
 * as numbers or as numeric strings ("0.7"); unknown keys are refused rather
 * than silently ignored.
 */
import { prng } from '../../../lib/prng';

export interface SamplingParams {
  /** Tokens to generate at most (vLLM's default: 16). */
  maxTokens: number;
  /** 0 = greedy (argmax); otherwise logits are divided by it before softmax. */
  temperature: number;
  /** Nucleus sampling: keep the most probable tokens whose mass reaches top_p. */
  topP: number;
  /** Seeds the request's own PRNG: the same seed gives the same tokens. */
  seed?: number;
  /** Generation ends at the first of these strings, which is cut from the output. */
  stop: string[];
  /** Keep generating past the end-of-sequence token. */
  ignoreEos: boolean;
}

const KEYS = ['max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'ignore_eos'];

/** Parses and checks `sampling_parameters`; `undefined` or empty gives the defaults. */
export function parseSamplingParameters(json: string | undefined): SamplingParams {
  let raw: unknown = {};
  if (json !== undefined && json.trim() !== '') {
    try {
      raw = JSON.parse(json);
    } catch (error) {
      throw new Error(`sampling_parameters expects a JSON object, but got invalid JSON (${(error as Error).message}): ${json.slice(0, 200)}`);
    }
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Error(`sampling_parameters expects a JSON object, but got ${Array.isArray(raw) ? 'an array' : typeof raw === 'object' ? 'null' : typeof raw}`);
  }
  const params = raw as Record<string, unknown>;
  const unknown = Object.keys(params).filter((k) => !KEYS.includes(k));
  if (unknown.length > 0) throw new Error(`sampling_parameters has unsupported key(s) ${unknown.map((k) => `'${k}'`).join(', ')}; supported: ${KEYS.join(', ')}`);

  const number = (key: string, fallback: number, check: (v: number) => boolean, expected: string): number => {
    const value = params[key];
    if (value === undefined || value === null) return fallback;
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isFinite(n) || !check(n)) throw new Error(`sampling_parameters.${key} expects ${expected}, but got ${JSON.stringify(value)}`);
    return n;
  };
  const maxTokens = number('max_tokens', 16, (v) => Number.isInteger(v) && v >= 1, 'an integer ≥ 1');
  const temperature = number('temperature', 1, (v) => v >= 0, 'a number ≥ 0 (0 = greedy)');
  const topP = number('top_p', 1, (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  const seed = params.seed === undefined || params.seed === null ? undefined : number('seed', 0, (v) => Number.isInteger(v), 'an integer');

  let stop: string[] = [];
  const rawStop = params.stop;
  if (typeof rawStop === 'string') stop = [rawStop];
  else if (Array.isArray(rawStop) && rawStop.every((s) => typeof s === 'string')) stop = rawStop as string[];
  else if (rawStop !== undefined && rawStop !== null) throw new Error(`sampling_parameters.stop expects a string or an array of strings, but got ${JSON.stringify(rawStop)}`);
  if (stop.some((s) => s === '')) throw new Error('sampling_parameters.stop expects non-empty strings, but got an empty string');

  const rawIgnore = params.ignore_eos;
  let ignoreEos = false;
  if (typeof rawIgnore === 'boolean') ignoreEos = rawIgnore;
  else if (rawIgnore === 'true' || rawIgnore === 'false') ignoreEos = rawIgnore === 'true';
  else if (rawIgnore !== undefined && rawIgnore !== null) throw new Error(`sampling_parameters.ignore_eos expects a boolean, but got ${JSON.stringify(rawIgnore)}`);

  return { maxTokens, temperature, topP, seed, stop, ignoreEos };
}

/** Picks the next token id from one row of logits. */
export type Sampler = (logits: Float32Array) => number;

export function createSampler(params: SamplingParams): Sampler {
  if (params.temperature === 0) return argmax;
  const random = prng(params.seed ?? Math.floor(Math.random() * 2 ** 32));
  const inverseTemperature = 1 / params.temperature;
  const topP = params.topP;
  let weights = new Float64Array(0);
  let scratch = new Float64Array(0);
  return (logits) => {
    const n = logits.length;
    if (weights.length !== n) {
      weights = new Float64Array(n);
      scratch = new Float64Array(n);
    }
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const w = expNonPositive((logits[i] - max) * inverseTemperature);
      weights[i] = w;
      sum += w;
    }
    const u = random();
    if (topP >= 1) return draw(weights, 0, sum * u);
    // Nucleus: the most probable tokens whose mass reaches top_p (all tokens tied at the boundary weight are kept).
    scratch.set(weights);
    const threshold = nucleusThreshold(scratch, topP * sum);
    let kept = 0;
    for (let i = 0; i < n; i++) if (weights[i] >= threshold) kept += weights[i];
    return draw(weights, threshold, kept * u);
  };
}

/**
 * The weight τ such that the tokens weighing more than τ hold less than
 * `target` and those weighing at least τ hold `target` or more — found by
 * quickselect on the weights (expected linear time; `values` is scrambled).
 */
function nucleusThreshold(values: Float64Array, target: number): number {
  let lo = 0;
  let hi = values.length;
  let above = 0;
  for (;;) {
    const pivot = values[lo + ((hi - lo) >> 1)];
    // Three-way partition of [lo, hi): greater | equal | less.
    let gt = lo;
    let i = lo;
    let lt = hi;
    let greater = 0;
    let equal = 0;
    while (i < lt) {
      const v = values[i];
      if (v > pivot) {
        values[i] = values[gt];
        values[gt++] = v;
        greater += v;
        i++;
      } else if (v < pivot) {
        values[i] = values[--lt];
        values[lt] = v;
      } else {
        equal += v;
        i++;
      }
    }
    if (above + greater >= target && gt > lo) {
      hi = gt;
    } else if (above + greater + equal >= target || lt >= hi) {
      return pivot;
    } else {
      above += greater + equal;
      lo = lt;
    }
  }
}

/** 2^k for k = 0 … -1074 (index -k), so exp needs no Math.pow. */
const POW2_NEG = Float64Array.from({ length: 1075 }, (_, k) => 2 ** -k);

/**
 * e^x for x ≤ 0, about four times faster than Math.exp (the softmax over the
 * vocabulary is per-token work that batching cannot share): x = (k + f)·ln 2
 * with |f| ≤ ½, e^(f·ln 2) by its Taylor series to degree 8 (relative error
 * < 1e-9, far below what sampling can tell), 2^k from a table.
 */
export function expNonPositive(x: number): number {
  const t = x * Math.LOG2E;
  if (t < -1074) return 0;
  const k = Math.round(t);
  const y = (t - k) * Math.LN2;
  const p = 1 + y * (1 + y * (1 / 2 + y * (1 / 6 + y * (1 / 24 + y * (1 / 120 + y * (1 / 720 + y * (1 / 5040 + y / 40320)))))));
  return p * POW2_NEG[-k];
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Walks the tokens weighing at least `floor`, in id order, until `target` weight is used up. */
function draw(weights: Float64Array, floor: number, target: number): number {
  let last = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i];
    if (w === 0 || w < floor) continue;
    last = i;
    target -= w;
    if (target < 0) return i;
  }
  return last;
}
