import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { get_encoding } from 'tiktoken';
import { describe, expect, it } from 'vitest';
import { PieceCounter } from '../../src/metering/piece-counter.js';
import { compilePretokenizer, forEachPiece } from '../../src/metering/pretokenize.js';
import { loadFixtures } from '../support/fixtures.js';
import { retained } from '../support/heap.js';

const require = createRequire(import.meta.url);
const patStr = (name: string): string => (require(`tiktoken/encoders/${name}.json`) as { pat_str: string }).pat_str;
const never = (): boolean => false;

const ENCODINGS = ['o200k_base', 'cl100k_base'] as const;
const tiktoken = Object.fromEntries(ENCODINGS.map((e) => [e, get_encoding(e)]));
const whole = (e: string, s: string): number => tiktoken[e]!.encode_ordinary(s).length;
const counter = (e: string, maxCached?: number): PieceCounter =>
  new PieceCounter(compilePretokenizer(patStr(e)), (piece) => whole(e, piece), maxCached);

/** Every branch of both patterns: cases, contractions, digits, marks, CJK, every kind of white space. */
const ATOMS = [
  'a', 'word', 'Zebra', 'ABC', 'ß', 'ǅ', 'ʰ', 'Ж', '中', '文', '。', '，', 'é', 'e\u0301', '😀', '🧑‍💻',
  ' ', '  ', '\t', '\n', '\r\n', '\r', '\v', '\f', '\u00a0', '\u3000', '\u0085', '\ufeff', '\u2028', '\u200b',
  '/', '.', ',', "'", "'s", "'LL", "'Ve", "'t", "'m", "'D", 'don', 'I', '"', ':', '-', '_', '~', '\x00', '\x7f',
  '1', '23', '4567', '٣', '<|endoftext|>', '\ud800', '\udc00',
];
const ASCII_ATOMS = ATOMS.filter((a) => /^[\x00-\x7f]+$/.test(a));
const text = (atoms: string[]): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...atoms), { minLength: 1, maxLength: 60 }).map((a) => a.join(''));

describe('the JavaScript pre-tokenizer', () => {
  for (const e of ENCODINGS) {
    it(`gives tiktoken's exact ${e} count on any mix of text`, () => {
      const c = counter(e);
      fc.assert(fc.property(fc.oneof(text(ATOMS), fc.string({ unit: 'binary', maxLength: 80 })), (s) => c.count(s, never) === whole(e, s)), {
        numRuns: 1500,
      });
    });

    it(`matches the same ${e} pieces with its ASCII twin on ASCII text`, () => {
      const pre = compilePretokenizer(patStr(e));
      const pieces = (s: string, re: RegExp): string[] => [...s.matchAll(re)].map((m) => m[0]);
      fc.assert(fc.property(text(ASCII_ATOMS), (s) => {
        const viaApi: string[] = [];
        forEachPiece(s, pre, (p) => viaApi.push(p) > 0);
        expect(viaApi).toEqual(pieces(s, pre.unicode));
        expect(pieces(s, pre.ascii)).toEqual(pieces(s, pre.unicode));
      }), { numRuns: 800 });
    });

    it(`counts every fixture prompt and response and this repository's docs exactly (${e})`, () => {
      const c = counter(e);
      const corpus = [
        ...loadFixtures().flatMap((f) => [f.request, f.response].map((m) => Buffer.concat(m.body_chunks).toString('utf8'))),
        readFileSync(new URL('../../README.md', import.meta.url), 'utf8'),
        readFileSync(new URL('../../src/traffic/exchange.ts', import.meta.url), 'utf8'),
      ].filter((s) => s.length > 0);
      expect(corpus.length).toBeGreaterThan(10);
      for (const s of corpus) expect(c.count(s, never)).toBe(whole(e, s));
    });
  }
});

describe('PieceCounter', () => {
  it('remembers at most maxCached pieces', () => {
    const c = counter('o200k_base', 100);
    const s = Array.from({ length: 1000 }, (_, i) => `w${i}x`).join(' ');
    expect(c.count(s, never)).toBe(whole('o200k_base', s));
    expect(c.cached).toBeGreaterThan(0);
    expect(c.cached).toBeLessThanOrEqual(100);
  });

  it('counts a long unbroken piece in slices, close to the whole count', () => {
    const c = counter('o200k_base');
    let seed = 11;
    const letters = Array.from({ length: 5000 }, () => {
      seed = (seed * 48271) % 2147483647;
      return String.fromCharCode(97 + (seed % 26));
    }).join('');
    const n = c.count(`start ${letters} end`, never) ?? 0;
    expect(Math.abs(n - whole('o200k_base', `start ${letters} end`))).toBeLessThanOrEqual(Math.ceil(letters.length / 256));
  });

  it('keeps no prompt alive through the pieces it remembers', () => {
    const c = new PieceCounter(compilePretokenizer(patStr('cl100k_base')), () => 1);
    // A distinct 20-letter word per prompt: V8 would keep each match as a slice of its whole prompt.
    const word = (i: number): string => ' ' + [...i.toString(26)].map((d) => String.fromCharCode(97 + parseInt(d, 26))).join('').padStart(19, 'q');
    const before = retained();
    for (let i = 0; i < 60; i++) c.count(`${word(i)} and`.repeat(50_000), never);
    // 60 prompts of 1.2 MB: about 72 MB if each remembered word held its prompt.
    expect(c.cached).toBeGreaterThanOrEqual(60);
    expect(retained() - before).toBeLessThan(20e6);
  });

  it('stops when the caller no longer waits', () => {
    let calls = 0;
    const c = counter('cl100k_base');
    expect(c.count('word '.repeat(5000), () => ++calls > 2)).toBeNull();
  });
});
