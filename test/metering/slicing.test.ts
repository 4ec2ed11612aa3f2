import fc from 'fast-check';
import { get_encoding } from 'tiktoken';
import { describe, expect, it } from 'vitest';
import { countInSlices, isPieceBoundary, MAX_SLICE, nextCut } from '../../src/metering/slicing.js';

const encoders = { o200k: get_encoding('o200k_base'), cl100k: get_encoding('cl100k_base') };
const o200k = (s: string): number => encoders.o200k.encode_ordinary(s).length;
const never = (): boolean => false;

/** Pieces that exercise every pre-tokenizer branch: words, contractions, digits, marks, CJK, newlines. */
const ATOMS = [
  'a', 'word', 'Zebra', 'ß', 'ǅ', 'ʰ', 'Ж', '中', '文', '。', '，', 'é', 'e\u0301', '😀', '🧑‍💻',
  ' ', '  ', '\t', '\n', '\r\n', '\r', '\u00a0', '\u3000', '\u0085', '\ufeff',
  '/', '.', ',', "'", "'s", "'ll", "'t", "'m", 'don', 'it', 'I', '"', ':', '-', '1', '23', '4567', '<|endoftext|>', '\ud800',
];
const text = fc.array(fc.constantFrom(...ATOMS), { minLength: 1, maxLength: 40 }).map((a) => a.join(''));

describe('piece boundaries', () => {
  for (const [name, encoder] of Object.entries(encoders)) {
    it(`never change the ${name} count when a text is cut there`, () => {
      fc.assert(
        fc.property(text, (s) => {
          const whole = encoder.encode_ordinary(s).length;
          for (let i = 1; i < s.length; i++) {
            if (!isPieceBoundary(s, i)) continue;
            const parts = encoder.encode_ordinary(s.slice(0, i)).length + encoder.encode_ordinary(s.slice(i)).length;
            if (parts !== whole) return false;
          }
          return true;
        }),
        { numRuns: 400 },
      );
    });
  }

  it('are found in ordinary prose, code and CJK punctuation', () => {
    expect(isPieceBoundary('hello world', 5)).toBe(true);
    expect(isPieceBoundary('line\nnext', 5)).toBe(true);
    expect(isPieceBoundary('call(x)', 4)).toBe(true);
    expect(isPieceBoundary('中文。中文', 2)).toBe(true);
    expect(isPieceBoundary("don't", 3)).toBe(false); // o200k keeps the contraction
    expect(isPieceBoundary('.\n/x', 2)).toBe(false); // o200k punctuation takes "\n/"
    expect(isPieceBoundary('a  b', 2)).toBe(false); // inside a whitespace run
  });
});

describe('slicing', () => {
  it('counts natural text exactly in slices', () => {
    const prose = Array.from({ length: 400 }, (_, i) => `Sentence ${i}, with words; and "quotes".\n中文句子，第${i}句。`).join(' ');
    expect(prose.length).toBeGreaterThan(MAX_SLICE * 20);
    expect(countInSlices(prose, o200k, never)).toBe(o200k(prose));
  });

  it('keeps every slice short and never splits a surrogate pair', () => {
    const emoji = '😀'.repeat(1000);
    let start = 0;
    while (start < emoji.length) {
      const end = nextCut(emoji, start);
      expect(end - start).toBeGreaterThan(0);
      expect(end - start).toBeLessThanOrEqual(MAX_SLICE);
      expect(end % 2).toBe(0);
      start = end;
    }
  });

  it('stays close to the whole count on a long run without boundaries', () => {
    let seed = 7;
    const letters = Array.from({ length: 6000 }, () => {
      seed = (seed * 48271) % 2147483647;
      return String.fromCharCode(97 + (seed % 26));
    }).join('');
    const whole = o200k(letters);
    const sliced = countInSlices(letters, o200k, never) ?? 0;
    expect(Math.abs(sliced - whole)).toBeLessThanOrEqual(Math.ceil(letters.length / MAX_SLICE));
  });

  it('tokenises a 1 MB single word (which tiktoken alone cannot) with a positive count', () => {
    const word = 'qwertyuiopasdfghjklzxcvbnm'.repeat(40_330).slice(0, 1_048_576);
    const tokens = countInSlices(word, o200k, never) ?? 0;
    expect(tokens).toBeGreaterThan(1_048_576 / 16);
    expect(tokens).toBeLessThan(1_048_576);
  });

  it('stops when the caller no longer waits', () => {
    let calls = 0;
    const result = countInSlices('x '.repeat(2000), (s) => s.length, () => ++calls > 3);
    expect(result).toBeNull();
    expect(calls).toBe(4);
  });
});
