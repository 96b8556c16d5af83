/**
 * The causal-lm backend on the built sluice-chat model, run as the server
 * runs it: in a model-instance worker thread (worker-host/worker-main), so
 * these tests also cover streams, cancels and errors across that boundary.
 * The engine's batching itself is tested in engine.test.ts.
 */
import { RowFailures } from '../../core/runner';
import { InferenceError } from '../../core/errors';
import { isStreamingRunner, type ModelRunner, type StreamingRunner } from '../../core/runner';
import { decodeBytesTensor } from '../../../protocol/triton/bytes-tensor';
import { inWorker } from '../worker-host';
import { CAUSAL_LM_RUNNER } from './runner';
import { chatBatchInputs, chatContext, chatInputs, collectingSink, type ChatRequest } from './chat-requests';

let runner: StreamingRunner;
let batchRunner: ModelRunner;

beforeAll(async () => {
  const [chat, batch] = await Promise.all([inWorker(CAUSAL_LM_RUNNER)(chatContext('sluice-chat')), inWorker(CAUSAL_LM_RUNNER)(chatContext('sluice-chat-batch'))]);
  if (!isStreamingRunner(chat)) throw new Error('the causal-lm worker runner does not stream');
  [runner, batchRunner] = [chat, batch];
});

afterAll(async () => {
  await Promise.all([runner?.close(), batchRunner?.close()]);
});

async function run(request: ChatRequest, signal = new AbortController().signal) {
  const sink = collectingSink();
  await runner.stream(chatInputs(request), sink, signal);
  const final = sink.responses[sink.responses.length - 1];
  return { responses: sink.responses, text: sink.responses.map((r) => r.text).join(''), final };
}

const greedy = { max_tokens: 24, temperature: 0 };

describe('causal-lm runner: generation', () => {
  it('streams deltas whose concatenation is the non-streamed text', async () => {
    const streamed = await run({ prompt: 'The weather today is', sampling: greedy, stream: true, returnCounts: true, returnFinishReason: true });
    const whole = await run({ prompt: 'The weather today is', sampling: greedy, stream: false, exclude: true, returnCounts: true, returnFinishReason: true });
    expect(streamed.responses.length).toBeGreaterThan(3);
    expect(streamed.responses.filter((r) => r.final)).toHaveLength(1);
    expect(streamed.final.final).toBe(true);
    expect(streamed.responses.slice(0, -1).every((r) => r.finishReason === undefined && r.text !== '')).toBe(true);
    expect(whole.responses).toHaveLength(1);
    expect(streamed.text).toBe(whole.text);
    expect(whole.text.length).toBeGreaterThan(10);
    // Per-response counts in streaming add up to the total of the non-streamed response.
    expect(streamed.responses.reduce((n, r) => n + (r.numOutputTokens ?? 0), 0)).toBe(whole.final.numOutputTokens);
    expect(whole.final.numInputTokens).toBeGreaterThanOrEqual(4);
    expect(streamed.final.numInputTokens).toBe(whole.final.numInputTokens);
    // Every response with num_input_tokens says how many came from the prefix cache (none yet, for a prompt of one block or less).
    expect(streamed.responses.every((r) => r.cachedPromptTokens === 0)).toBe(true);
    expect(whole.final.finishReason).toBe(whole.final.numOutputTokens === 24 ? 'length' : 'stop');
  });

  it('prepends the prompt unless exclude_input_in_output, and refuses it when streaming', async () => {
    const withPrompt = await run({ prompt: 'Once upon a time', sampling: greedy });
    const without = await run({ prompt: 'Once upon a time', sampling: greedy, exclude: true });
    expect(withPrompt.text).toBe(`Once upon a time${without.text}`);
    await expect(run({ prompt: 'x', stream: true, exclude: false })).rejects.toThrow('When streaming, `exclude_input_in_output` = False is not allowed');
  });

  it('is deterministic for a seed and varies across seeds', async () => {
    const sampling = (seed: number) => ({ max_tokens: 20, temperature: 0.9, top_p: 0.95, seed });
    const a = await run({ prompt: 'Tell me a story', sampling: sampling(11), exclude: true });
    const b = await run({ prompt: 'Tell me a story', sampling: sampling(11), stream: true });
    const c = await run({ prompt: 'Tell me a story', sampling: sampling(12), exclude: true });
    expect(b.text).toBe(a.text);
    expect(c.text).not.toBe(a.text);
  });

  it('ends at max_tokens with finish_reason length', async () => {
    const { final } = await run({ prompt: 'Count:', sampling: { max_tokens: 7, temperature: 0, ignore_eos: true }, exclude: true, returnCounts: true, returnFinishReason: true });
    expect(final.numOutputTokens).toBe(7);
    expect(final.finishReason).toBe('length');
  });

  it('cuts the output at a stop string and never streams it', async () => {
    const plain = await run({ prompt: 'A list of things', sampling: { max_tokens: 40, temperature: 0, ignore_eos: true }, exclude: true });
    const stop = plain.text.slice(20, 24);
    const expected = plain.text.slice(0, plain.text.indexOf(stop));
    const streamed = await run({ prompt: 'A list of things', sampling: { max_tokens: 40, temperature: 0, ignore_eos: true, stop: [stop, 'never appears'] }, stream: true, returnFinishReason: true });
    expect(streamed.text).toBe(expected);
    expect(streamed.final.finishReason).toBe('stop');
    expect(streamed.responses.some((r) => r.text.includes(stop))).toBe(false);
  });

  it.each([
    ['{"temperature": 0', /sampling_parameters expects a JSON object, but got invalid JSON/],
    [{ top_p: 1.5 }, /sampling_parameters.top_p expects a number in \(0, 1\], but got 1.5/],
    [{ max_tokens: -2 }, /sampling_parameters.max_tokens expects an integer ≥ 1, but got -2/],
  ])('refuses sampling_parameters %j with INVALID_ARGUMENT', async (sampling, message) => {
    const error = await run({ prompt: 'hi', sampling }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InferenceError);
    expect((error as InferenceError).code).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toMatch(message);
  });

  it('refuses a prompt longer than the context length', async () => {
    await expect(run({ prompt: 'word '.repeat(1100), sampling: greedy })).rejects.toThrow(/the prompt has \d+ tokens, but the context length is 1024/);
  });
});

describe('causal-lm runner: concurrency and cancellation', () => {
  it('lets a request join another mid-generation without changing either text', async () => {
    const long = { max_tokens: 40, temperature: 0, ignore_eos: true };
    const short = { max_tokens: 10, temperature: 0.7, seed: 9, ignore_eos: true };
    let second: Promise<Awaited<ReturnType<typeof run>>> | undefined;
    let activeWhileBoth = 0;
    const sinkA = collectingSink(() => {
      if (!second && sinkA.responses.length === 5) {
        second = run({ prompt: 'Second prompt here', sampling: short, stream: true });
        activeWhileBoth = runner.activeSequences;
      }
    });
    await runner.stream(chatInputs({ prompt: 'First prompt', sampling: long, stream: true }), sinkA, new AbortController().signal);
    const b = await second!;
    expect(activeWhileBoth).toBe(2);
    expect(runner.activeSequences).toBe(0);
    const aloneA = await run({ prompt: 'First prompt', sampling: long, stream: true });
    const aloneB = await run({ prompt: 'Second prompt here', sampling: short, stream: true });
    expect(sinkA.responses.map((r) => r.text).join('')).toBe(aloneA.text);
    expect(b.text).toBe(aloneB.text);
  });

  it('ends a cancelled stream promptly with finish_reason cancelled while others go on', async () => {
    const controller = new AbortController();
    let atAbort = -1;
    const sink = collectingSink(() => {
      if (sink.responses.length === 3 && !controller.signal.aborted) {
        atAbort = sink.responses.length;
        controller.abort();
      }
    });
    const other = run({ prompt: 'Keeps going', sampling: { max_tokens: 30, temperature: 0, ignore_eos: true }, stream: true, returnCounts: true });
    await runner.stream(chatInputs({ prompt: 'Cancel me', sampling: { max_tokens: 500, temperature: 0, ignore_eos: true }, stream: true, returnFinishReason: true }), sink, controller.signal);
    const final = sink.responses[sink.responses.length - 1];
    expect(final).toEqual(expect.objectContaining({ final: true, finishReason: 'cancelled' }));
    // The cancel crosses to the worker as a message; responses already in flight still arrive, but the
    // sequence stops far short of its 500 tokens (the engine drops it before its next pass: engine.test.ts).
    expect(sink.responses.length - atAbort).toBeLessThan(50);
    const otherResult = await other;
    expect(otherResult.responses.reduce((n, r) => n + (r.numOutputTokens ?? 0), 0)).toBe(30);
    expect(runner.activeSequences).toBe(0);
  });

  it('answers an already cancelled request with an empty cancelled final response', async () => {
    const controller = new AbortController();
    controller.abort();
    const { responses } = await run({ prompt: 'never', stream: true, returnFinishReason: true }, controller.signal);
    expect(responses).toEqual([expect.objectContaining({ text: '', final: true, finishReason: 'cancelled' })]);
  });
});

describe('causal-lm runner: batched execute', () => {
  it('returns every row in order, equal to the same prompts streamed alone', async () => {
    const rows = [
      { prompt: 'First row', sampling: { max_tokens: 12, temperature: 0 }, exclude: true },
      { prompt: 'Second, longer row of the batch', sampling: { max_tokens: 20, temperature: 0.8, seed: 3 }, exclude: false },
      { prompt: 'Third', sampling: { max_tokens: 5, temperature: 0, ignore_eos: true }, exclude: true },
    ];
    const outputs = await batchRunner.execute(chatBatchInputs(rows));
    const text = outputs.get('text_output')!;
    expect(text.shape).toEqual([3, 1]);
    const texts = decodeBytesTensor(text.data).map((b) => b.toString('utf8'));
    const reasons = decodeBytesTensor(outputs.get('finish_reason')!.data).map((b) => b.toString('utf8'));
    const counts = outputs.get('num_output_tokens')!;
    expect(counts.shape).toEqual([3, 1]);
    expect(counts.data.readUInt32LE(8)).toBe(5);
    expect(reasons[2]).toBe('length');
    for (let i = 0; i < rows.length; i++) {
      const streamed = await run({ prompt: rows[i].prompt, sampling: rows[i].sampling, stream: true });
      expect(texts[i]).toBe((rows[i].exclude ? '' : rows[i].prompt) + streamed.text);
    }
  });

  it('refuses stream=true on a model that is not decoupled, failing that row only (RowFailures)', async () => {
    const failure = await batchRunner.execute(new Map([...chatInputs({ prompt: 'x', stream: true })].map(([k, t]) => [k, { ...t, shape: [1, 1] }]))).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RowFailures);
    const row = (failure as RowFailures).failures.get(0);
    expect(row).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/stream=true needs a decoupled model/) });
  });
});

describe('causal-lm runner: prefix cache', () => {
  it('reports the prompt tokens it reused as sluice_cached_prompt_tokens, on every streamed response and the same text', async () => {
    const prompt = `${'A shared system prompt that many conversations begin with. '.repeat(8)}Question one?`;
    const request = { prompt, sampling: greedy, stream: true, returnCounts: true, returnFinishReason: true };
    const cold = await run(request);
    const warm = await run(request);
    const tokens = warm.final.numInputTokens!;
    expect(warm.text).toBe(cold.text);
    expect(cold.final.cachedPromptTokens).toBe(0);
    // Whole 16-token blocks, leaving the last prompt token to prefill.
    expect(warm.responses.map((r) => r.cachedPromptTokens)).toEqual(warm.responses.map(() => Math.floor((tokens - 1) / 16) * 16));
    expect(warm.final.cachedPromptTokens).toBeGreaterThan(48);
  });
});
