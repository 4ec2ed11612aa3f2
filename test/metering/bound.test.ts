import { describe, expect, it } from 'vitest';
import { boundAll, boundTokens, splitAtByteBudget, utf8PrefixEnd } from '../../src/metering/bound.js';

describe('cheap bound', () => {
  it('is ceil(UTF-8 bytes / 2) per text', () => {
    expect(boundTokens('')).toBe(0);
    expect(boundTokens('abc')).toBe(2);
    expect(boundTokens('中文')).toBe(3); // 6 bytes
    expect(boundTokens('😀')).toBe(2); // 4 bytes
    expect(boundAll(['a', 'b', 'c'])).toBe(3);
  });
});

describe('utf8PrefixEnd', () => {
  it('stops before a character that does not fit and never splits a surrogate pair', () => {
    expect(utf8PrefixEnd('abc', 2)).toBe(2);
    expect(utf8PrefixEnd('aé', 2)).toBe(1); // é is 2 bytes
    expect(utf8PrefixEnd('a😀b', 4)).toBe(1);
    expect(utf8PrefixEnd('a😀b', 5)).toBe(3);
    expect(utf8PrefixEnd('\ud800x', 3)).toBe(1); // lone surrogate = 3 bytes (U+FFFD)
    expect(utf8PrefixEnd('abc', 100)).toBe(3);
  });
});

describe('splitAtByteBudget', () => {
  it('keeps texts within budget whole', () => {
    expect(splitAtByteBudget(['ab', 'cd'], 4)).toEqual({ exact: ['ab', 'cd'], restTokens: 0, truncated: false });
  });

  it('cuts the text that crosses the budget and bounds everything after it', () => {
    expect(splitAtByteBudget(['abcd', 'efghij', 'klmnop'], 6)).toEqual({
      exact: ['abcd', 'ef'],
      restTokens: 2 + 3, // "ghij" and "klmnop"
      truncated: true,
    });
  });
});
