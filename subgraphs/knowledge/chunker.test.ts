import { encode } from 'gpt-tokenizer/cjs/encoding/r50k_base';
import { chunkDocument, type Chunk, type ChunkOptions } from './chunker';
import { countTokens, pretokenize } from '../../lib/token-counter';

/** A small seeded PRNG (mulberry32): generated documents are the same on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomLetters(next: () => number, length: number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  return Array.from({ length }, () => letters[Math.floor(next() * letters.length)]).join('');
}

function randomBase64(next: () => number, length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  return Array.from({ length }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
}

interface GeneratedSection {
  heading: string | null;
  body: string;
}

/**
 * A Markdown document with nested headings and, in each section, prose,
 * lists, fenced code with `#` lines, and now and then the awkward cases: CJK
 * and emoji, special-token strings, whitespace runs, a base64 blob, a long run
 * of letters. Returns the sections as the chunker should see them.
 */
function generateDocument(seed: number, sectionCount: number): { content: string; sections: GeneratedSection[] } {
  const next = random(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(next() * items.length)];
  const vocabulary = ['the', 'gateway', 'routes', 'naïve', "don't", 'Redis', '数据', '検索', '🙂', '<|endoftext|>', 'x=1;', 'v2.3', '42', 'über', "it's", '—', 'tokens', 'API'];
  const parts: string[] = [];
  const sections: GeneratedSection[] = [];
  const trail: string[] = [];
  let word = 0;
  const sentence = () => {
    const words = Array.from({ length: 3 + Math.floor(next() * 14) }, () => `${pick(vocabulary)}${word++}`);
    return `${words.join(' ')}${pick(['.', '.', '!', '?', '。'])}`;
  };
  for (let s = 0; s < sectionCount; s++) {
    const level = Math.min(trail.length + 1, 1 + Math.floor(next() * 3));
    trail.length = level - 1;
    trail.push(`Part ${s} ${pick(vocabulary)}`);
    parts.push(`${'#'.repeat(level)} ${trail[level - 1]}`);
    const blocks: string[] = [];
    const blockCount = 1 + Math.floor(next() * 6);
    for (let b = 0; b < blockCount; b++) {
      const kind = next();
      if (kind < 0.45) blocks.push(Array.from({ length: 1 + Math.floor(next() * 8) }, sentence).join(pick([' ', '  ', '\n'])));
      else if (kind < 0.6) blocks.push(Array.from({ length: 2 + Math.floor(next() * 5) }, () => `- ${sentence()}`).join('\n'));
      else if (kind < 0.72) blocks.push(['```sh', `# comment ${word++}`, `echo "${sentence()}"`, '```'].join('\n'));
      else if (kind < 0.8) blocks.push(`Key ${word++}: ${randomBase64(next, 300 + Math.floor(next() * 3000))} end${word++}.`);
      else if (kind < 0.86) blocks.push(`Run ${word++} ${randomLetters(next, 200 + Math.floor(next() * 3000))} done${word++}.`);
      else if (kind < 0.93) blocks.push(`\t${sentence()}   \t ${sentence()}`);
      else blocks.push(Array.from({ length: 1 + Math.floor(next() * 60) }, () => `这是第${word++}个测试。`).join(''));
    }
    const body = blocks.join('\n\n');
    parts.push(body);
    sections.push({ heading: trail.join(' > '), body });
  }
  return { content: parts.join('\n\n'), sections };
}

/** A chunk's text without the heading trail (and blank line) it starts with. */
function bodyOf(chunk: Chunk): string {
  return chunk.heading === null ? chunk.text : chunk.text.slice(chunk.text.indexOf('\n\n') + 2);
}

/**
 * Each chunk body is found in its section's text, in order, and together they
 * cover every non-blank character of it: nothing lost, nothing from elsewhere.
 * Returns, per consecutive pair, the text the second repeats from the first.
 */
function expectCoverage(section: GeneratedSection, chunks: readonly Chunk[]): string[] {
  const overlaps: string[] = [];
  let covered = 0;
  let from = 0;
  for (const chunk of chunks) {
    expect(chunk.heading).toBe(section.heading);
    const piece = bodyOf(chunk);
    // Every chunk brings text no earlier chunk had: the first place after the
    // previous chunk's start where it reaches past what is covered.
    let at = section.body.indexOf(piece, from);
    while (at >= 0 && at + piece.length <= covered) at = section.body.indexOf(piece, at + 1);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(section.body.slice(covered, Math.max(covered, at)).trim()).toBe('');
    if (chunk !== chunks[0]) overlaps.push(section.body.slice(at, Math.max(at, covered)));
    covered = Math.max(covered, at + piece.length);
    from = at + 1;
  }
  expect(section.body.slice(covered).trim()).toBe('');
  return overlaps;
}

function expectWithinLimits(chunks: readonly Chunk[], options: ChunkOptions): void {
  chunks.forEach((chunk, i) => {
    expect(chunk.index).toBe(i);
    expect(chunk.text).toBe(chunk.text.trim());
    expect(bodyOf(chunk).trim()).not.toBe('');
    expect(chunk.tokenCount).toBe(countTokens(chunk.text));
    expect(chunk.tokenCount).toBeLessThanOrEqual(options.maxTokens);
  });
}

function bySection(chunks: readonly Chunk[], sections: readonly GeneratedSection[]): Chunk[][] {
  // Generated headings are unique ("Part <n> …"), so the trail names the section.
  return sections.map((section) => chunks.filter((chunk) => chunk.heading === section.heading));
}

describe('countTokens and pretokenize', () => {
  const texts = [
    "Hello, world! It's a naïve café — 数据 検索 🙂🙂 <|endoftext|> <|im_start|>",
    'line one\n\n\n   indented\tand\ttabbed   \r\n trailing   ',
    `base64 ${randomBase64(random(1), 2000)} and letters ${randomLetters(random(2), 900)}`,
  ];

  it.each(texts)('counts as gpt-tokenizer r50k_base encodes, special tokens as plain text: %#', (text) => {
    expect(countTokens(text)).toBe(encode(text, { disallowedSpecial: new Set() }).length);
  });

  it.each(texts)('pre-tokenizes into pieces that give back the text and its count: %#', (text) => {
    const pieces = pretokenize(text);
    expect(pieces.map((p) => p.text).join('')).toBe(text);
    expect(pieces.reduce((sum, p) => sum + p.tokens, 0)).toBe(countTokens(text));
  });

  it('counts a pre-token of hundreds of KB window by window instead of overflowing the stack', () => {
    // "aaaa" is one r50k token, so windows of whole "aaaa"s count exactly.
    expect(countTokens('a'.repeat(400_000))).toBe(100_000);
  });
});

describe('chunkDocument', () => {
  const options: ChunkOptions = { maxTokens: 160, overlapTokens: 24 };

  it.each([
    [{ maxTokens: 8, overlapTokens: 0 }, /maxTokens to be an integer of at least 16.*got 8/],
    [{ maxTokens: 100.5, overlapTokens: 0 }, /maxTokens .*got 100\.5/],
    [{ maxTokens: 160, overlapTokens: 80 }, /overlapTokens to be an integer from 0 to less than half of maxTokens \(160\).*got 80/],
    [{ maxTokens: 160, overlapTokens: -1 }, /overlapTokens .*got -1/],
    [{ maxTokens: 160, overlapTokens: 2.5 }, /overlapTokens .*got 2\.5/],
  ])('refuses options %j with a TypeError saying what was expected', (bad, message) => {
    expect(() => chunkDocument('text', bad)).toThrow(TypeError);
    expect(() => chunkDocument('text', bad)).toThrow(message);
  });

  it('gives plain text without headings as chunks with no heading', () => {
    expect(chunkDocument('  Just a short note.\n\nWith two paragraphs.  \n', options)).toEqual([
      { index: 0, text: 'Just a short note.\n\nWith two paragraphs.', heading: null, tokenCount: countTokens('Just a short note.\n\nWith two paragraphs.') },
    ]);
  });

  it('gives no chunks for an empty or blank document', () => {
    expect(chunkDocument('', options)).toEqual([]);
    expect(chunkDocument(' \n\t\r\n ', options)).toEqual([]);
  });

  it('starts a section at each ATX heading and gives each chunk its heading trail, in `heading` and at the start of `text`', () => {
    const content = [
      'Preamble text.',
      '# Setup',
      'Setup intro.',
      '## Install ##',
      'Run the installer.',
      '#### Linux',
      'Use apt.',
      '## Configure',
      '#hashtag is not a heading, nor is',
      '####### seven hashes, nor',
      '    # an indented line.',
      '# Usage',
      '## ',
      'Use it.',
      '# Empty',
      '   ',
      '# Last',
    ].join('\n\n');
    const chunks = chunkDocument(content, options);
    expect(chunks.map((c) => [c.heading, c.text])).toEqual([
      [null, 'Preamble text.'],
      ['Setup', 'Setup\n\nSetup intro.'],
      ['Setup > Install', 'Setup > Install\n\nRun the installer.'],
      ['Setup > Install > Linux', 'Setup > Install > Linux\n\nUse apt.'],
      ['Setup > Configure', 'Setup > Configure\n\n#hashtag is not a heading, nor is\n\n####### seven hashes, nor\n\n    # an indented line.'],
      ['Usage', 'Usage\n\nUse it.'],
    ]);
    chunks.forEach((chunk) => expect(chunk.tokenCount).toBe(countTokens(chunk.text)));
  });

  it('ignores `#` lines inside fenced code, for ``` and ~~~ fences, closed or not', () => {
    const content = [
      '# Code',
      '```md\n# inside backticks\n```',
      '~~~\n# inside tildes\n```\n# still inside: a ``` fence does not close ~~~\n~~~~',
      '```inline``` is not a fence, so the next line is a heading',
      '## Real',
      '````\n# never closed\n## to the end',
    ].join('\n');
    const chunks = chunkDocument(content, options);
    expect(chunks.map((c) => c.heading)).toEqual(['Code', 'Code > Real']);
    expect(chunks[0].text).toContain('# inside backticks');
    expect(chunks[0].text).toContain('# still inside');
    expect(chunks[1].text).toBe('Code > Real\n\n````\n# never closed\n## to the end');
  });

  it('reads CRLF and CR line ends as LF', () => {
    const { content } = generateDocument(7, 6);
    const lf = chunkDocument(content, options);
    expect(chunkDocument(content.replace(/\n/g, '\r\n'), options)).toEqual(lf);
    expect(chunkDocument(content.replace(/\n/g, '\r'), options)).toEqual(lf);
  });

  it('is deterministic', () => {
    const { content } = generateDocument(11, 12);
    expect(chunkDocument(content, options)).toEqual(chunkDocument(content, options));
  });

  it.each([
    { maxTokens: 16, overlapTokens: 0 },
    { maxTokens: 16, overlapTokens: 7 },
    { maxTokens: 64, overlapTokens: 12 },
    { maxTokens: 160, overlapTokens: 24 },
    { maxTokens: 256, overlapTokens: 0 },
  ])('keeps every chunk within %j, never across sections, losing no text (varied documents)', (limits) => {
    for (const seed of [1, 2, 3]) {
      const { content, sections } = generateDocument(seed, 10);
      const chunks = chunkDocument(content, limits);
      expectWithinLimits(chunks, limits);
      bySection(chunks, sections).forEach((ofSection, i) => expectCoverage(sections[i], ofSection));
    }
  });

  it('handles a 512 KB document in one pass, within limits and losing no text', () => {
    const { content, sections } = generateDocument(5, 260);
    expect(Buffer.byteLength(content)).toBeGreaterThan(512 * 1024);
    const chunks = chunkDocument(content, options);
    expect(chunks.length).toBeGreaterThan(1000);
    expectWithinLimits(chunks, options);
    bySection(chunks, sections).forEach((ofSection, i) => expectCoverage(sections[i], ofSection));
  });

  it('overlaps consecutive chunks of a section by up to overlapTokens, and not across sections', () => {
    const { content, sections } = generateDocument(21, 30);
    const chunks = chunkDocument(content, options);
    const overlaps = bySection(chunks, sections).flatMap((ofSection, i) => expectCoverage(sections[i], ofSection));
    expect(overlaps.length).toBeGreaterThan(50);
    // Whole units are repeated, so an overlap is short of the target by at most
    // a unit (a long word may not fit at all), and not over it where it stands;
    // counted alone, its first word without the space before it may take a few
    // tokens more (" tokens" is 1 token, "tokens" 3).
    const sizes = overlaps.map((overlap) => countTokens(overlap.trim()));
    sizes.forEach((tokens) => expect(tokens).toBeLessThanOrEqual(options.overlapTokens + 4));
    expect(sizes.filter((tokens) => tokens === 0).length).toBeLessThan(overlaps.length / 10);
    expect(sizes.reduce((sum, tokens) => sum + tokens, 0) / sizes.length).toBeGreaterThan(options.overlapTokens * 0.6);
    // The first chunk of each section repeats nothing from the section before.
    bySection(chunks, sections).forEach((ofSection, i) => {
      if (i > 0 && ofSection.length > 0) expect(sections[i - 1].body.includes(bodyOf(ofSection[0]))).toBe(false);
    });
  });

  it('repeats nothing when overlapTokens is 0', () => {
    const { content, sections } = generateDocument(21, 30);
    const chunks = chunkDocument(content, { maxTokens: 160, overlapTokens: 0 });
    const overlaps = bySection(chunks, sections).flatMap((ofSection, i) => expectCoverage(sections[i], ofSection));
    expect(overlaps.length).toBeGreaterThan(20);
    overlaps.forEach((overlap) => expect(overlap).toBe(''));
  });

  it('ends chunks at paragraph ends rather than mid-paragraph', () => {
    const paragraphs = Array.from({ length: 40 }, (_, p) => `Paragraph ${p} starts here. It has a middle sentence number ${p}. It ends at end${p}.`);
    const chunks = chunkDocument(paragraphs.join('\n\n'), options);
    expect(chunks.length).toBeGreaterThan(3);
    chunks.forEach((chunk) => expect(chunk.text).toMatch(/end\d+\.$/));
  });

  it('ends chunks at sentence ends within one long paragraph', () => {
    const sentences = Array.from({ length: 120 }, (_, s) => `Sentence ${s} says something about item ${s * 3} and then it is done.`);
    const chunks = chunkDocument(sentences.join(' '), options);
    expect(chunks.length).toBeGreaterThan(3);
    chunks.forEach((chunk) => expect(chunk.text).toMatch(/done\.$/));
  });

  it('cuts an over-long word by tokens, losing none of it', () => {
    const blob = randomBase64(random(3), 5000);
    const run = randomLetters(random(4), 5000); // one pre-token: cut between characters
    for (const word of [blob, run]) {
      const section = { heading: null, body: `The key is ${word} and that is all.` };
      const chunks = chunkDocument(section.body, options);
      expect(chunks.length).toBeGreaterThan(5);
      expectWithinLimits(chunks, options);
      const overlaps = expectCoverage(section, chunks);
      overlaps.forEach((overlap) => expect(overlap).not.toBe(''));
    }
  });

  it('fits a chunk whose first word needs more tokens without its leading space', () => {
    // " inconvenience" is one token, "inconvenience" four: counted in place the
    // word fits a chunk, but a chunk starting with it must count it bare.
    // A word of exactly 16 tokens in place cannot join "Begin" in a 16-token chunk, so it starts the next one.
    let word = ' inconvenience';
    while (countTokens(`${word}.q`) <= 16) word += '.q';
    if (countTokens(word) < 16) word += '.';
    expect(countTokens(word)).toBe(16);
    expect(countTokens(word.trim())).toBeGreaterThan(16);
    const section = { heading: null, body: `Begin${word} after.` };
    const limits = { maxTokens: 16, overlapTokens: 0 };
    const chunks = chunkDocument(section.body, limits);
    expectWithinLimits(chunks, limits);
    expectCoverage(section, chunks);
  });

  it('shortens a heading trail longer than half the chunk to its innermost end, keeping it whole in `heading`', () => {
    const outer = Array.from({ length: 60 }, (_, i) => `outer${i}`).join(' ');
    const content = `# ${outer}\n\n## Inner title\n\n${'Body text goes here. '.repeat(20)}`;
    const limits = { maxTokens: 32, overlapTokens: 4 };
    const chunks = chunkDocument(content, limits);
    expectWithinLimits(chunks, limits);
    for (const chunk of chunks) {
      expect(chunk.heading).toBe(`${outer} > Inner title`);
      const shown = chunk.text.slice(0, chunk.text.indexOf('\n\n'));
      expect(shown).toMatch(/^….* > Inner title$/);
      expect(chunk.heading!.endsWith(shown.slice(1))).toBe(true);
      expect(countTokens(shown) + 2).toBeLessThanOrEqual(16);
    }
  });
});
