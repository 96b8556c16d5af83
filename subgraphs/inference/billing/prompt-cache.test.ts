import { createHash, randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { createLogger } from '../../../lib/log';
import { connectRedis } from '../../../lib/redis';
import { renderChat } from '../completions/chat-template';
import { cacheHitTokens, PROMPT_PREFIX_KEY_PREFIX, PromptCache, promptPrefixes, RECENT_BOUNDARIES } from './prompt-cache';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const MESSAGES = [
  { role: 'system', content: 'Réponds brièvement.' },
  { role: 'user', content: 'Nomme un fleuve 🌊' },
  { role: 'assistant', content: 'La Seine.' },
  { role: 'user', content: 'Un autre ?' },
];

describe('promptPrefixes', () => {
  it('cuts the rendered prompt at every message boundary and ends with the whole prompt, each hashed with its UTF-8 length', () => {
    const prompt = renderChat(undefined, MESSAGES);
    const expected = [1, 2, 3, 4].map((n) => renderChat(undefined, MESSAGES.slice(0, n), { addGenerationPrompt: false }));
    expected.push(prompt);
    expect(promptPrefixes(undefined, MESSAGES, prompt)).toEqual(expected.map((text) => ({ bytes: Buffer.byteLength(text), hash: sha256(text) })));
  });

  it('in a long conversation cuts after the first message and the last RECENT_BOUNDARIES only', () => {
    const long = Array.from({ length: 10 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: `message ${i}` }));
    const prompt = renderChat(undefined, long);
    const cuts = [1, 7, 8, 9, 10].map((n) => renderChat(undefined, long.slice(0, n), { addGenerationPrompt: false }));
    expect(RECENT_BOUNDARIES).toBe(4);
    expect(promptPrefixes(undefined, long, prompt).map((p) => p.bytes)).toEqual([...cuts, prompt].map((text) => Buffer.byteLength(text)));
  });

  it('leaves out boundaries the template renders differently from the prompt, or refuses to render', () => {
    // Like templates that insist on alternating roles, and ones that close the conversation with a marker.
    const template =
      "{% if messages[-1].role != 'user' %}{{ raise_exception('the last message must be the user') }}{% endif %}" +
      '{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}<end>{% if add_generation_prompt %}[assistant] {% endif %}';
    const prompt = renderChat(template, MESSAGES);
    const prefixes = promptPrefixes(template, MESSAGES, prompt);
    // Conversations ending with the assistant are refused; the one of two messages ends with "<end>", which the prompt
    // has only after all four. Left: all four messages without the opened assistant turn, and the whole prompt.
    const conversation = renderChat(template, MESSAGES, { addGenerationPrompt: false });
    expect(prefixes).toEqual([conversation, prompt].map((text) => ({ bytes: Buffer.byteLength(text), hash: sha256(text) })));
  });
});

describe('cacheHitTokens', () => {
  it.each([
    [100, 50, 200, 25],
    [7, 1, 3, 2], // rounded down
    [100, 200, 200, 100],
    [100, 0, 200, 0],
    [0, 10, 200, 0],
  ])('%i prompt tokens with %i of %i bytes cached: %i hit tokens', (tokens, hitBytes, promptBytes, hit) => {
    expect(cacheHitTokens(tokens, hitBytes, promptBytes)).toBe(hit);
  });
});

describe('PromptCache', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = connectRedis('memory://', createLogger({ service: 'prompt-cache-test' }));
  });
  afterAll(() => redis.disconnect());

  it('finds the longest remembered prefix for the same user and model only, and keeps them for the TTL', async () => {
    const cache = new PromptCache(redis, 120);
    const user = `user-${randomUUID()}`;
    const short = renderChat(undefined, MESSAGES.slice(0, 2));
    const long = renderChat(undefined, MESSAGES);
    const shortPrefixes = promptPrefixes(undefined, MESSAGES.slice(0, 2), short);
    const longPrefixes = promptPrefixes(undefined, MESSAGES, long);
    expect(await cache.longestSeen(user, 'sluice-chat', longPrefixes)).toBe(0);
    await cache.remember(user, 'sluice-chat', shortPrefixes);
    expect(await cache.longestSeen(user, 'sluice-chat', longPrefixes)).toBe(Buffer.byteLength(renderChat(undefined, MESSAGES.slice(0, 2), { addGenerationPrompt: false })));
    expect(await cache.longestSeen(user, 'sluice-chat', shortPrefixes)).toBe(Buffer.byteLength(short));
    expect(await cache.longestSeen(user, 'sluice-chat-batch', longPrefixes)).toBe(0);
    expect(await cache.longestSeen(`user-${randomUUID()}`, 'sluice-chat', longPrefixes)).toBe(0);
    const ttl = await redis.ttl(`${PROMPT_PREFIX_KEY_PREFIX}${user}:sluice-chat:${shortPrefixes[0].hash}`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it('refuses a TTL below one second', () => {
    expect(() => new PromptCache(redis, 0)).toThrow('PromptCache expects a TTL of at least 1 second, but got 0');
  });
});
