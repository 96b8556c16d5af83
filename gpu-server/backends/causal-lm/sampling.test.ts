import { createSampler, expNonPositive, parseSamplingParameters } from './sampling';

describe('sampling_parameters', () => {
  it('defaults like the vLLM backend and accepts numeric strings', () => {
    expect(parseSamplingParameters(undefined)).toEqual({ maxTokens: 16, temperature: 1, topP: 1, seed: undefined, stop: [], ignoreEos: false });
    expect(parseSamplingParameters('{"max_tokens":"5","temperature":"0.5","top_p":0.9,"seed":"7","stop":"\\n","ignore_eos":"true"}')).toEqual({
      maxTokens: 5,
      temperature: 0.5,
      topP: 0.9,
      seed: 7,
      stop: ['\n'],
      ignoreEos: true,
    });
  });

  it.each([
    ['{', /expects a JSON object, but got invalid JSON/],
    ['[1]', /expects a JSON object, but got an array/],
    ['{"max_tokens":0}', /max_tokens expects an integer ≥ 1, but got 0/],
    ['{"max_tokens":1.5}', /max_tokens expects an integer ≥ 1, but got 1.5/],
    ['{"temperature":-1}', /temperature expects a number ≥ 0 \(0 = greedy\), but got -1/],
    ['{"top_p":0}', /top_p expects a number in \(0, 1\], but got 0/],
    ['{"top_p":"x"}', /top_p expects a number in \(0, 1\], but got "x"/],
    ['{"seed":1.2}', /seed expects an integer, but got 1.2/],
    ['{"stop":[1]}', /stop expects a string or an array of strings, but got \[1\]/],
    ['{"stop":""}', /stop expects non-empty strings/],
    ['{"ignore_eos":3}', /ignore_eos expects a boolean, but got 3/],
    ['{"best_of":2}', /unsupported key\(s\) 'best_of'; supported: max_tokens/],
  ])('refuses %s', (json, message) => {
    expect(() => parseSamplingParameters(json)).toThrow(message);
  });
});

describe('sampler', () => {
  const logits = Float32Array.from([0.1, 2.5, 2.4, -1, 0]);
  const draws = (params: string, n: number) => {
    const sample = createSampler(parseSamplingParameters(params));
    return Array.from({ length: n }, () => sample(logits));
  };

  it('is greedy at temperature 0', () => {
    expect(draws('{"temperature":0}', 5)).toEqual([1, 1, 1, 1, 1]);
  });

  it('gives the same draws for the same seed and different ones for another', () => {
    const a = draws('{"seed":42}', 50);
    expect(draws('{"seed":42}', 50)).toEqual(a);
    expect(draws('{"seed":43}', 50)).not.toEqual(a);
    // Temperature 1 over these logits reaches beyond the top two tokens.
    expect(new Set(a).size).toBeGreaterThan(2);
  });

  it('keeps only the nucleus with top_p', () => {
    // p(1) ≈ 0.46, p(2) ≈ 0.42: top_p 0.5 keeps tokens 1 and 2 only; 0.3 keeps token 1 only.
    expect(new Set(draws('{"seed":1,"top_p":0.5}', 200))).toEqual(new Set([1, 2]));
    expect(new Set(draws('{"seed":1,"top_p":0.3}', 50))).toEqual(new Set([1]));
  });

  it('sharpens with a low temperature', () => {
    const hot = draws('{"seed":5,"temperature":2}', 300).filter((t) => t === 1).length;
    const cold = draws('{"seed":5,"temperature":0.2}', 300).filter((t) => t === 1).length;
    expect(cold).toBeGreaterThan(hot);
  });
});

describe('expNonPositive', () => {
  it('matches Math.exp to 1e-9 relative down to the subnormals, and underflows to 0', () => {
    for (let x = 0; x >= -700; x -= 0.0137) expect(Math.abs(expNonPositive(x) / Math.exp(x) - 1)).toBeLessThan(1e-9);
    expect(expNonPositive(0)).toBe(1);
    expect(expNonPositive(-800)).toBe(0);
  });
});
