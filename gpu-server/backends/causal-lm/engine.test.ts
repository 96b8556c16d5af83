import * as ort from 'onnxruntime-node';
import { GenerationEngine, type ForwardPass, type GenerationRequest } from './engine';
import { PrefixCacheCounter } from '../../core/prefix-cache-counters';
import { PrefixCache } from './prefix-cache';
import type { CausalLmGeometry } from './model-files';

/**
 * A stand-in for the ONNX session with the same inputs and outputs, whose
 * next token depends on every cached key its attention mask lets it see:
 * next = (Σ visible keys + position) mod 96, with key = token + 1. A cache
 * copied to the wrong place, a wrong mask or a wrong position changes the
 * tokens, so comparing with `reference` checks the engine's KV handling.
 */
const VOCAB = 97;
const EOS = 96;
const geometry: CausalLmGeometry = { layers: 1, kvHeads: 1, headDim: 1, vocabSize: VOCAB, eosTokenIds: [EOS], hasPositionIds: true, hasUseCacheBranch: false };

function fakeSession(delayMs = 0) {
  return {
    async run(feeds: Record<string, ort.Tensor>) {
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      const [b, s] = feeds.input_ids.dims as number[];
      const total = feeds.attention_mask.dims[1] as number;
      const past = total - s;
      const ids = feeds.input_ids.data as BigInt64Array;
      const mask = feeds.attention_mask.data as BigInt64Array;
      const positions = feeds.position_ids.data as BigInt64Array;
      const pastKeys = feeds['past_key_values.0.key'].data as Float32Array;
      const present = new Float32Array(b * total);
      const logits = new Float32Array(b * s * VOCAB);
      for (let r = 0; r < b; r++) {
        present.set(pastKeys.subarray(r * past, (r + 1) * past), r * total);
        for (let j = 0; j < s; j++) present[r * total + past + j] = Number(ids[r * s + j]) + 1;
        for (let j = 0; j < s; j++) {
          let sum = 0;
          for (let k = 0; k <= past + j; k++) if (mask[r * total + k] === 1n) sum += present[r * total + k];
          logits[(r * s + j) * VOCAB + ((sum + Number(positions[r * s + j])) % (VOCAB - 1))] = 10;
        }
      }
      // Values are a copy of the keys in their own tensor, as a real graph's presents are distinct buffers.
      const kv = (data: Float32Array) => new ort.Tensor('float32', data, [b, 1, total, 1]);
      return { logits: new ort.Tensor('float32', logits, [b, s, VOCAB]), 'present.0.key': kv(present), 'present.0.value': kv(present.slice()) };
    },
  };
}

/** The tokens the fake model generates for `prompt`, computed directly. */
function reference(prompt: number[], n: number): number[] {
  const tokens = [...prompt];
  const out: number[] = [];
  while (out.length < n) {
    const next = (tokens.reduce((a, t) => a + t + 1, 0) + tokens.length - 1) % (VOCAB - 1);
    tokens.push(next);
    out.push(next);
  }
  return out;
}

const argmax = (logits: Float32Array) => logits.indexOf(Math.max(...logits));

function request(promptIds: number[], maxTokens: number, tokens: number[], signal = new AbortController().signal, onToken?: (id: number) => void): GenerationRequest {
  return {
    promptIds,
    maxTokens,
    sample: argmax,
    stopOnEos: true,
    signal,
    onToken(id) {
      tokens.push(id);
      onToken?.(id);
      return false;
    },
  };
}

describe('GenerationEngine (continuous batching)', () => {
  it('gives every sequence the tokens it would get alone, however they are batched', async () => {
    const engine = new GenerationEngine(fakeSession(1), geometry, 512);
    const prompts = [[5], [1, 2, 3, 4, 5, 6, 7], [9, 9], [40, 2, 7, 1]];
    const maxTokens = [30, 12, 25, 3];
    const outputs = prompts.map(() => [] as number[]);
    const results = await Promise.all(
      prompts.map(async (p, i) => {
        // Staggered arrivals: each joins a batch already running, with different pasts.
        await new Promise((r) => setTimeout(r, i * 7));
        return engine.generate(request(p, maxTokens[i], outputs[i]));
      }),
    );
    prompts.forEach((p, i) => expect(outputs[i]).toEqual(reference(p, maxTokens[i])));
    expect(results.map((r) => r.finishReason)).toEqual(['length', 'length', 'length', 'length']);
  });

  it('prefills requests that arrive together in one left-padded pass', async () => {
    const engine = new GenerationEngine(fakeSession(), geometry, 512);
    const passes: ForwardPass[] = [];
    engine.observe((p) => passes.push(p));
    const prompts = [[1, 2, 3, 4, 5, 6, 7], [9], [30, 31, 32]];
    const outputs = prompts.map(() => [] as number[]);
    await Promise.all(prompts.map((p, i) => engine.generate(request(p, 4, outputs[i]))));
    expect(passes[0]).toEqual({ kind: 'prefill', sequences: 3, tokens: 21 });
    expect(passes.slice(1)).toEqual(Array(3).fill({ kind: 'decode', sequences: 3, tokens: 3 }));
    prompts.forEach((p, i) => expect(outputs[i]).toEqual(reference(p, 4)));
  });

  it('runs each decode step as one pass over all live sequences; a new request joins at the next step', async () => {
    const engine = new GenerationEngine(fakeSession(1), geometry, 512);
    const passes: ForwardPass[] = [];
    engine.observe((p) => passes.push(p));
    const a: number[] = [];
    const b: number[] = [];
    let joinedAt = -1;
    let second: Promise<unknown> | undefined;
    const first = engine.generate(
      request([3], 20, a, undefined, () => {
        if (a.length === 4) {
          joinedAt = passes.length;
          second = engine.generate(request([8, 8], 6, b));
        }
      }),
    );
    await first;
    await second;
    expect(passes.slice(0, joinedAt)).toEqual([{ kind: 'prefill', sequences: 1, tokens: 1 }, ...Array(3).fill({ kind: 'decode', sequences: 1, tokens: 1 })]);
    expect(passes[joinedAt]).toEqual({ kind: 'prefill', sequences: 1, tokens: 2 });
    // B's first token came from its prefill; its other 5 from shared decode passes.
    expect(passes.slice(joinedAt + 1, joinedAt + 6)).toEqual(Array(5).fill({ kind: 'decode', sequences: 2, tokens: 2 }));
    expect(passes.slice(joinedAt + 6).every((p) => p.kind === 'decode' && p.sequences === 1)).toBe(true);
    expect(a).toEqual(reference([3], 20));
    expect(b).toEqual(reference([8, 8], 6));
    expect(engine.activeSequences).toBe(0);
  });

  it('drops a cancelled sequence before the next pass and resolves it as cancelled', async () => {
    const engine = new GenerationEngine(fakeSession(1), geometry, 512);
    const passes: ForwardPass[] = [];
    engine.observe((p) => passes.push(p));
    const controller = new AbortController();
    const cancelled: number[] = [];
    const kept: number[] = [];
    let abortedAt = -1;
    const [x, y] = await Promise.all([
      engine.generate(
        request([1], 100, cancelled, controller.signal, () => {
          if (cancelled.length === 5) {
            abortedAt = passes.length;
            controller.abort();
          }
        }),
      ),
      engine.generate(request([2], 15, kept)),
    ]);
    expect(x).toEqual({ finishReason: 'cancelled', outputTokens: 5, cachedPromptTokens: 0 });
    expect(cancelled).toHaveLength(5);
    expect(y.finishReason).toBe('length');
    expect(kept).toEqual(reference([2], 15));
    expect(passes.slice(abortedAt).every((p) => p.sequences === 1)).toBe(true);
  });

  it('stops at the end-of-sequence token, at the context length, and fails everything on close', async () => {
    const engine = new GenerationEngine(fakeSession(), geometry, 8);
    const tokens: number[] = [];
    const sampleEos: GenerationRequest = { ...request([4], 10, tokens), sample: () => EOS };
    expect(await engine.generate(sampleEos)).toEqual({ finishReason: 'stop', outputTokens: 1, cachedPromptTokens: 0 });
    expect(tokens).toEqual([]);

    const long: number[] = [];
    // Context 8 = 3 prompt tokens + 5 generated.
    expect(await engine.generate(request([1, 2, 3], 100, long))).toEqual({ finishReason: 'length', outputTokens: 5, cachedPromptTokens: 0 });
    expect(long).toEqual(reference([1, 2, 3], 5));
    await expect(engine.generate(request([1, 2, 3, 4, 5, 6, 7, 8], 1, []))).rejects.toThrow('the prompt has 8 tokens, but the context length is 8');

    const slow = new GenerationEngine(fakeSession(5), geometry, 512);
    const pending = slow.generate(request([1], 1000, []));
    await new Promise((r) => setTimeout(r, 20));
    slow.close();
    await expect(pending).rejects.toThrow('the model instance was unloaded while the request was generating');
    await expect(slow.generate(request([1], 1, []))).rejects.toThrow('unloaded');
  });
});

describe('GenerationEngine with a prefix cache', () => {
  const cached = (budgetBytes = 1 << 20) => new PrefixCache(4, budgetBytes, geometry);
  const shared = [7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9];

  it('prefills only what follows the cached blocks, at the true positions, and reports the reused tokens', async () => {
    const cache = cached();
    const engine = new GenerationEngine(fakeSession(), geometry, 512, cache);
    const passes: ForwardPass[] = [];
    engine.observe((p) => passes.push(p));
    const first: number[] = [];
    expect(await engine.generate(request([...shared, 3], 6, first))).toMatchObject({ cachedPromptTokens: 0 });
    const again: number[] = [];
    passes.length = 0;
    // 13 prompt tokens: blocks 0-2 (12 tokens) are cached, the 13th is prefilled.
    expect(await engine.generate(request([...shared, 3], 6, again))).toMatchObject({ cachedPromptTokens: 12 });
    expect(passes[0]).toEqual({ kind: 'prefill', sequences: 1, tokens: 1 });
    expect(again).toEqual(first);
    expect(again).toEqual(reference([...shared, 3], 6));
    // A prompt that is exactly the cached blocks still prefills its last token (for logits): 2 blocks reused, not 3.
    const exact: number[] = [];
    expect(await engine.generate(request(shared, 3, exact))).toMatchObject({ cachedPromptTokens: 8 });
    expect(exact).toEqual(reference(shared, 3));
    expect(cache.counters[PrefixCacheCounter.HitTokens]).toBe(20);
    expect(cache.counters[PrefixCacheCounter.MissTokens]).toBe(13 + 1 + 4);
  });

  it('batches sequences with different cached lengths in one prefill and the same decode steps, each with its own tokens', async () => {
    const engine = new GenerationEngine(fakeSession(1), geometry, 512, cached());
    await engine.generate(request([...shared, 50, 51, 52, 53, 54], 2, []));
    const passes: ForwardPass[] = [];
    engine.observe((p) => passes.push(p));
    // Cached 16, 12, 8, 4 and 0 tokens, rests of 3, 1, 6, 2 and 5 tokens: gaps between past and rest in every row but one.
    const prompts = [
      [...shared, 50, 51, 52, 53, 54, 60, 61],
      [...shared, 3],
      [...shared.slice(0, 8), 9, 9, 9, 9, 9, 9],
      [...shared.slice(0, 4), 30, 31],
      [90, 91, 92, 93, 94],
    ];
    const outputs = prompts.map(() => [] as number[]);
    const results = await Promise.all(prompts.map((p, i) => engine.generate(request(p, 10 + i, outputs[i]))));
    expect(results.map((r) => r.cachedPromptTokens)).toEqual([16, 12, 8, 4, 0]);
    expect(passes[0]).toEqual({ kind: 'prefill', sequences: 5, tokens: 5 * 6 });
    expect(passes[1]).toEqual({ kind: 'decode', sequences: 5, tokens: 5 });
    prompts.forEach((p, i) => expect(outputs[i]).toEqual(reference(p, 10 + i)));
  });

  it('evicts least-recently-used blocks within its budget, the tails of prefixes first', async () => {
    // Fake K/V: 2 tensors × 1 head × 4 tokens × 1 float × 4 bytes = 32 bytes a block; room for 3.
    const cache = cached(96);
    const engine = new GenerationEngine(fakeSession(), geometry, 512, cache);
    const a = [1, 1, 1, 1, 2, 2, 2, 2, 3];
    const b = [4, 4, 4, 4, 5, 5, 5, 5, 6];
    await engine.generate(request(a, 1, []));
    await engine.generate(request(b, 1, []));
    expect(cache.size).toBe(3);
    expect(cache.counters[PrefixCacheCounter.EvictedBlocks]).toBe(1);
    expect(cache.counters[PrefixCacheCounter.Bytes]).toBe(96);
    // a's tail block went first: its first block still hits.
    const tokens: number[] = [];
    expect(await engine.generate(request(a, 4, tokens))).toMatchObject({ cachedPromptTokens: 4 });
    expect(tokens).toEqual(reference(a, 4));
    expect(cache.counters[PrefixCacheCounter.Bytes]).toBeLessThanOrEqual(96);
  });
});
