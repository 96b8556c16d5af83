import { describe, expect, it } from 'vitest';
import { addChunk, emptyStream, isFinished, type StreamChunk } from './stream';

const usage = { promptTokens: 5, completionTokens: 3, totalTokens: 8, promptCacheHitTokens: 0, promptCacheMissTokens: 5 };
const assemble = (chunks: StreamChunk[]) => chunks.reduce(addChunk, emptyStream);

describe('stream assembly', () => {
  it('appends deltas in order and takes the finish reason and usage from the last chunk', () => {
    const stream = assemble([
      { index: 0, delta: 'Hel' },
      { index: 1, delta: 'lo' },
      { index: 2, delta: '!', finishReason: 'STOP', usage },
    ]);
    expect(stream.text).toBe('Hello!');
    expect(stream.usage).toEqual(usage);
    expect(isFinished(stream)).toBe(true);
  });

  it('holds a chunk that arrives early until the gap before it is filled', () => {
    const gap = assemble([
      { index: 0, delta: 'a' },
      { index: 2, delta: 'c' },
    ]);
    expect(gap.text).toBe('a');
    expect(
      assemble([
        { index: 0, delta: 'a' },
        { index: 2, delta: 'c' },
        { index: 1, delta: 'b' },
      ]).text,
    ).toBe('abc');
  });

  it('ignores a chunk it has already taken in', () => {
    const stream = assemble([
      { index: 0, delta: 'a' },
      { index: 0, delta: 'a' },
      { index: 1, delta: 'b' },
      { index: 1, delta: 'b' },
    ]);
    expect(stream.text).toBe('ab');
  });

  it('keeps the error of a stream that ends with ERROR', () => {
    const stream = assemble([
      { index: 0, delta: 'par' },
      { index: 1, delta: '', finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE', message: 'the GPU went away' } },
    ]);
    expect(stream).toMatchObject({ text: 'par', finishReason: 'ERROR', error: { code: 'GPU_UNAVAILABLE' } });
  });

  it('is not finished before its last chunk, and leaves the stream it was given unchanged', () => {
    const first = addChunk(emptyStream, { index: 0, delta: 'x' });
    expect(isFinished(first)).toBe(false);
    expect(emptyStream.text).toBe('');
  });
});
