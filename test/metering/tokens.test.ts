import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get_encoding } from 'tiktoken';
import { TokenCounter } from '../../src/metering/tokens.js';
import { boundAll } from '../../src/metering/bound.js';

const o200k = get_encoding('o200k_base');
const cl100k = get_encoding('cl100k_base');
const direct = (enc: typeof o200k, texts: string[]): number =>
  texts.reduce((n, t) => n + enc.encode_ordinary(t).length, 0);

const PROSE = Array.from(
  { length: 60 },
  (_, i) =>
    `Paragraph ${i}: The quick brown fox jumps over the lazy dog. "Quoted", (parenthesised) and hy-phen-ated words;\n` +
    `    indented code() { return x / 2; } // comment ${i * 7919}\n\tTabs, URLs like https://example.com/a/b?c=d, and émoji 😀.\n`,
).join('\n');

describe('TokenCounter lifecycle', () => {
  it('does not start the worker for models it cannot count exactly', async () => {
    const counter = new TokenCounter();
    const estimate = await counter.count(['Hello there'], 'anthropic', 'claude-sonnet-4-5');
    expect(estimate).toEqual({ tokens: boundAll(['Hello there']), method: 'bound' });
    expect(counter.workerRunning).toBe(false);
    await counter.close();
  });

  it('answers with the bound while the encoder loads, then exactly; close() ends the worker', async () => {
    const counter = new TokenCounter({ deadlineMs: 10_000 });
    expect(counter.workerRunning).toBe(false);
    const first = await counter.count(['Hello world'], 'openai', 'gpt-4o');
    expect(first.method).toBe('bound');
    expect(counter.workerRunning).toBe(true);
    expect(await counter.warmUp(['o200k_base'])).toBe(true);
    expect(counter.readyEncodings).toEqual(['o200k_base']);
    expect(await counter.count(['Hello world'], 'openai', 'gpt-4o')).toEqual({ tokens: 2, method: 'exact' });
    await counter.close();
    expect(counter.workerRunning).toBe(false);
    expect(counter.readyEncodings).toEqual([]);
    expect((await counter.count(['Hello world'], 'openai', 'gpt-4o')).method).toBe('bound');
  });

  it('lets the process exit with an idle worker that was never closed', () => {
    const tokensModule = fileURLToPath(new URL('../../src/metering/tokens.ts', import.meta.url));
    const script = `
      import { TokenCounter } from ${JSON.stringify(tokensModule)};
      const counter = new TokenCounter({ deadlineMs: 10000 });
      await counter.warmUp(['o200k_base']);
      const estimate = await counter.count(['Hello world'], 'openai', 'gpt-4o');
      console.log(JSON.stringify(estimate));
    `;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(child.signal).toBeNull(); // not killed by the safety timeout
    expect(child.status).toBe(0);
    expect(JSON.parse(child.stdout.trim())).toEqual({ tokens: 2, method: 'exact' });
  });
});

describe('TokenCounter counts', () => {
  const counter = new TokenCounter({ deadlineMs: 20_000 });
  beforeAll(async () => {
    expect(await counter.warmUp()).toBe(true);
  });
  afterAll(() => counter.close());

  it('matches tiktoken for o200k and cl100k models, including multi-KB text', async () => {
    const texts = ['Hello world', 'How many tokens is this sentence?', PROSE];
    expect(PROSE.length).toBeGreaterThan(10_000);
    expect(await counter.count(texts, 'openai', 'gpt-4o-2024-08-06')).toEqual({
      tokens: direct(o200k, texts),
      method: 'exact',
    });
    expect(await counter.count(texts, 'azure_openai', 'gpt-35-turbo')).toEqual({
      tokens: direct(cl100k, texts),
      method: 'exact',
    });
  });

  it('counts special-token text as ordinary text', async () => {
    const texts = ['<|endoftext|> then <|im_start|>user<|im_sep|> and <|fim_prefix|>'];
    const estimate = await counter.count(texts, 'openai', 'o3-mini');
    expect(estimate).toEqual({ tokens: direct(o200k, texts), method: 'exact' });
    expect(estimate.tokens).toBeGreaterThan(10);
  });

  it('adds the caller-provided per-message overhead', async () => {
    const exact = await counter.count(['Hello world'], 'openai', 'gpt-4.1-mini', 7);
    expect(exact).toEqual({ tokens: 2 + 7, method: 'exact' });
    expect(counter.bound(['Hello world'], 7)).toEqual({ tokens: 6 + 7, method: 'bound' });
  });

  it('tokenises only maxExactBytes exactly and bounds the rest', async () => {
    const small = new TokenCounter({ maxExactBytes: 11, deadlineMs: 20_000 });
    await small.warmUp(['o200k_base']);
    const text = 'Hello world and a tail of twenty'; // 11 bytes exact + 21 bytes bounded
    expect(await small.count([text], 'openai', 'gpt-4o')).toEqual({ tokens: 2 + 11, method: 'bound' });
    await small.close();
  });

  it('gives a ceiling never below the count, also on high-entropy text where the bound falls below it', async () => {
    const base64 = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + (i >> 3) * 31) & 0xff)).toString('base64');
    expect(boundAll([base64])).toBeLessThan(direct(o200k, [base64]));
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.base64String({ maxLength: 400 }), fc.string({ unit: 'grapheme', maxLength: 100 }))),
        fc.nat(50),
        async (texts, extra) => {
          for (const model of ['gpt-4o', 'gpt-4']) {
            const ceiling = counter.ceiling(texts, 'openai', model, extra)!;
            expect((await counter.count(texts, 'openai', model, extra)).tokens).toBeLessThanOrEqual(ceiling);
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(counter.ceiling([base64], 'openai', 'gpt-4o')).toBe(base64.length);
    // Counts that need no tokenizer are at hand already: no ceiling to refine.
    expect(counter.ceiling([base64], 'anthropic', 'claude-sonnet-4-5')).toBeNull();
  });

  it('completes a 1 MB single-word prompt with a positive count', async () => {
    const word = 'abcdefghijklmnopqrstuvwxyz'.repeat(40_330).slice(0, 1_048_576);
    const estimate = await counter.count([word], 'openai', 'gpt-4o');
    expect(estimate.method).toBe('bound'); // beyond the default 256 KiB exact budget
    expect(estimate.tokens).toBeGreaterThan(0);
    expect(estimate.tokens).toBeLessThanOrEqual(boundAll([word]));
  });

  it('completes 200 KB of whitespace exactly with a positive count', async () => {
    const blank = ' \t'.repeat(50_000) + '\n'.repeat(1000) + ' '.repeat(99_000);
    const estimate = await counter.count([blank], 'openai', 'gpt-4o');
    expect(estimate.method).toBe('exact');
    expect(estimate.tokens).toBeGreaterThan(0);
    expect(estimate.tokens).toBeLessThan(boundAll([blank]));
  });

  it('falls back to the bound when the worker misses the deadline', async () => {
    const hurried = new TokenCounter({ deadlineMs: 1 });
    await hurried.warmUp(['o200k_base']);
    // ~256 KB of CJK without punctuation: hundreds of milliseconds of tokenising.
    const cjk = Array.from({ length: 87_000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 2000))).join('');
    expect(await hurried.count([cjk], 'openai', 'gpt-4o')).toEqual({ tokens: boundAll([cjk]), method: 'bound' });
    await hurried.close();
  });
});
